//! Gatehouse end-to-end helpers.
