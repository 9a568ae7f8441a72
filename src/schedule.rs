//! Learning-rate schedules. (being written)
