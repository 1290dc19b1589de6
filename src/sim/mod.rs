//! The simulator: a load generator, reference model and verifier that replace
//! the original challenge's test client.
