//! Independent compliance check over the event log. Shares no code with the scheduler.
