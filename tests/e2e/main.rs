//! End-to-end tests: the real `medallion` binary against a local lake and against a real S3
//! server (SeaweedFS, started by scripts/test.sh). One test binary for the whole project.

mod bronze;
mod cli;
mod silver;
mod common;
