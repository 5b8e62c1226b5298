//! The KPI arithmetic the API serves. It is defined once, in
//! [`waihu_core::kpi`] (documented in `docs/kpis.md`), so `waihu demo` and
//! `waihu run` print the same figures the dashboard shows; re-exported here
//! under the paths the handlers use.
pub use waihu_core::kpi::{fold, heat, is_connected, ratio, DayKpis, HeatCell, Kpis};
