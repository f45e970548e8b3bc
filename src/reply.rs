//! The one place a write's reply is built: from the client's request, the
//! transaction the log holds for it, and what applying that transaction to
//! this server's tree did.
//!
//! Every server of an ensemble answers its own clients, so the reply cannot
//! come from prep (which runs on the leader alone): it is rebuilt wherever
//! the transaction is applied. The log carries what that needs: the error
//! code of a failed write (`Txn::Error`), and for a failed multi every
//! operation's own result (a `Txn::Multi` of `Txn::Error`s, as ZooKeeper's
//! MultiTxn of ErrorTxns), so a follower answers exactly as the leader would.

use crate::proto::codes::op;
use crate::proto::{ErrorCode, MultiOp, OpResult, Request, Response};
use crate::tree::{Applied, OpOutcome, Txn};

/// The reply header's error code and the body for `request`, whose
/// transaction `txn` was applied with outcome `applied`.
pub fn build(request: &Request, txn: &Txn, applied: &Applied) -> (ErrorCode, Response) {
    match txn {
        Txn::Error { code } => {
            let err = ErrorCode::from_code(*code).unwrap_or(ErrorCode::SystemError);
            if let Request::Multi(ops) = request {
                // A version-1 log holds a failed multi as one error: the
                // failing operation is not known, so every result says it.
                return (ErrorCode::Ok, Response::Multi(ops.iter().map(|_| OpResult::Error(*code)).collect()));
            }
            (err, Response::Empty)
        }
        Txn::Multi(txns) if txns.iter().any(|sub| matches!(sub, Txn::Error { .. })) => {
            // The reply header of a failed multi says Ok; the errors are in the results.
            let results = txns
                .iter()
                .map(|sub| match sub {
                    Txn::Error { code } => OpResult::Error(*code),
                    _ => OpResult::Error(ErrorCode::RuntimeInconsistency.code()),
                })
                .collect();
            (ErrorCode::Ok, Response::Multi(results))
        }
        Txn::Multi(_) => {
            let Request::Multi(ops) = request else {
                return (ErrorCode::Ok, Response::Empty);
            };
            let results = ops
                .iter()
                .zip(applied.outcomes.iter())
                .map(|(operation, outcome)| multi_result(operation, outcome))
                .collect();
            (ErrorCode::Ok, Response::Multi(results))
        }
        _ => {
            let outcome = applied.outcomes.first();
            let response = match (request, outcome) {
                (Request::Create(create), Some(OpOutcome::Created(path, stat))) => {
                    if create.opcode == op::CREATE {
                        Response::Path(path.to_string())
                    } else {
                        Response::PathStat(path.to_string(), *stat)
                    }
                }
                (_, Some(OpOutcome::DataSet(stat))) | (_, Some(OpOutcome::AclSet(stat))) => Response::Stat(*stat),
                // Prep never logs a transaction that does not fit the tree;
                // a skipped one means the trees diverged.
                (_, Some(OpOutcome::Skipped)) => return (ErrorCode::RuntimeInconsistency, Response::Empty),
                _ => Response::Empty,
            };
            (ErrorCode::Ok, response)
        }
    }
}

fn multi_result(operation: &MultiOp, outcome: &OpOutcome) -> OpResult {
    match (operation, outcome) {
        (MultiOp::Create(create), OpOutcome::Created(path, stat)) => {
            if create.opcode == op::CREATE {
                OpResult::Create(path.to_string())
            } else {
                OpResult::Create2(path.to_string(), *stat)
            }
        }
        (_, OpOutcome::Deleted) => OpResult::Delete,
        (_, OpOutcome::DataSet(stat)) => OpResult::SetData(*stat),
        (_, OpOutcome::Skipped) => OpResult::Error(ErrorCode::RuntimeInconsistency.code()),
        _ => OpResult::Check,
    }
}
