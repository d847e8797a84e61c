//! Gradient checking (placeholder replaced by the checker module).

/// Report of a gradient check.
#[derive(Debug, Clone, PartialEq)]
pub struct GradCheckReport;

impl std::fmt::Display for GradCheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("report")
    }
}
