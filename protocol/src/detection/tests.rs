//! Detection unit tests: the SPRT's error rates and sample numbers, proofs, the ladder.
