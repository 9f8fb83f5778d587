"""End to end on real git over loopback with the simulator: the exact commits reverted, and why."""
