//! Dead letters: the original payload on `<ns>.dlq.<stage>.<job>`, with
//! headers saying what, where and why (`Jetflow-Job`, `Jetflow-Item`,
//! `Jetflow-Stage`, `Jetflow-Error`, `Jetflow-Attempts`,
//! `Jetflow-Original-Subject`; see [`crate::headers`]).

/// The de-duplication id of the dead letter of message `seq` of `stream`:
/// dead-lettering the same message again after a crash stores it once.
pub fn dead_letter_msg_id(stream: &str, seq: u64) -> String {
    format!("{stream}:{seq}")
}
