"""Control plane (Flask): merchants publish signed releases; PoPs enroll and pull them."""
