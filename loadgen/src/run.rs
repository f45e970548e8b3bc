//! The `run` subcommand: check the arguments and hand them to the workload
//! they name. Each workload sets itself up and runs on the skeleton in
//! `harness`; nothing else happens here.

use crate::cli::{RunArgs, Workload};
use crate::output::Summary;

/// Runs the workload the arguments name and returns its summary.
pub fn run(args: &RunArgs) -> Result<Summary, String> {
    args.validate()?;
    match args.workload {
        Workload::Mix => crate::mix::run(args),
        Workload::Watch => crate::watch::run(args),
        Workload::Churn => crate::churn::run(args),
        Workload::Lock => crate::lock::run(args),
    }
}
