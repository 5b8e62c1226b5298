//! The one runtime: owns sockets, timers and tasks, and drives the sans-IO cores.
