//! Evaluation: replay labelled data through the models and measure.
//!
//! [`intent`] holds the intent metrics (accuracy, in-scope accuracy, macro-F1, out-of-scope
//! precision and recall, AUROC, the threshold curve) and the calibration helpers that training
//! uses, so that `train` chooses its threshold with exactly the formulas `eval` reports.

pub mod faq;
pub mod intent;
pub mod replay;
pub mod risk;
