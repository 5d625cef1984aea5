/* Whether a rule's `active` schedule holds at an instant (spec 3; reference/schedule.py).
 * Local wall-clock time comes from the image's zone transition table. */
#include "runtime.h"

/* The UTC offset in force at `at`: the offset of the last transition starting at or before
 * it. The first transition starts at NONE, so one always applies; should a table start
 * later, its first offset holds before it. No table means UTC. */
static i64 utc_offset(i64 at) {
    i64 n = IMAGE[H_N_TRANSITIONS];
    const i64 *table = IMAGE + IMAGE[H_TRANSITIONS];
    i64 lo = 0, hi = n; /* binary search for the first transition starting after `at` */
    while (lo < hi) {
        i64 mid = lo + (hi - lo) / 2;
        if (table[2 * mid] <= at)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (n == 0) return 0;
    return table[2 * (lo == 0 ? 0 : lo - 1) + 1];
}

static i64 floor_div(i64 a, i64 b) {
    i64 q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int day_allowed(i64 days, i64 weekday) {
    return days == NONE || ((days >> weekday) & 1);
}

/* The local day and time of the request's instant, computed on the first rule that needs
 * them: `at` is the same for every rule. */
static int g_local_known;
static i64 g_weekday, g_seconds;

void schedule_reset(void) { g_local_known = 0; }

static void local_time(i64 at) {
    i64 local = add64(at, utc_offset(at));
    i64 day_number = floor_div(local, 86400);
    g_seconds = local - day_number * 86400;
    g_weekday = (day_number % 7 + 7 + 3) % 7; /* 1970-01-01 was a Thursday; 0 = Monday */
    g_local_known = 1;
}

int is_active(const i64 *rule, i64 at) {
    if (rule[R_FROM] != NONE && at < rule[R_FROM]) return 0;
    if (rule[R_UNTIL] != NONE && at >= rule[R_UNTIL]) return 0;
    i64 days = rule[R_DAYS];
    i64 start = rule[R_HOURS_START], end = rule[R_HOURS_END];
    if (days == NONE && start == NONE) return 1;
    if (!g_local_known) local_time(at);
    i64 seconds = g_seconds, weekday = g_weekday;
    if (start == NONE) return day_allowed(days, weekday);
    if (start < end) return start <= seconds && seconds < end && day_allowed(days, weekday);
    /* A window that wraps midnight belongs to the day on which it starts. */
    if (seconds >= start) return day_allowed(days, weekday);
    if (seconds < end) return day_allowed(days, (weekday + 6) % 7);
    return 0;
}
