//! Evaluation: replay labelled data through the models and measure.
//!
//! The intent metrics themselves live beside the model in [`crate::nlu::calibrate`]: training
//! chooses its threshold with exactly the formulas `eval` reports.

pub mod faq;
pub mod replay;
pub mod risk;
