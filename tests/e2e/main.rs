//! End-to-end tests: the real `medallion` binary against a local lake and against a real S3
//! server (SeaweedFS, started by scripts/test.sh). One test binary for the whole project.

/// Declares a scenario twice: `local` (a temporary folder) and `s3` (a unique prefix of the
/// SeaweedFS test bucket).
macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn local() {
                super::$body(crate::common::local());
            }
            #[test]
            fn s3() {
                if let Some(env) = crate::common::s3(stringify!($name)) {
                    super::$body(env);
                }
            }
        }
    };
}

mod bronze;
mod cli;
#[cfg(feature = "cluster")]
mod cluster;
mod silver;
mod common;
mod dashboard;
mod gold;
mod hostile;
mod ops;
mod pipeline;
mod serve;
mod watch;
mod serve_read;
mod shard;
