//! Campaign engine: eligibility, ranking, best time to call, pacing, retries, simulator. Sans-IO.
