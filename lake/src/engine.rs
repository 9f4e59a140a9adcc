//! The lake as delta-rs and DataFusion see it. S3 is configured here and in
//! [`crate::location`] only: the same variables, retries and region default for every client.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::datafusion::prelude::SessionContext;
use url::Url;

use crate::location::{retry_config, s3_builder, Location, StoreError};

impl Location {
    /// Storage options for delta-rs: empty for a local folder; on S3 the standard variables
    /// `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`), `AWS_ALLOW_HTTP`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` and `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`, else `us-east-1`), the lake's retries (`MEDALLION_S3_MAX_RETRIES`,
    /// default 4, within 30 s), and `AWS_S3_ALLOW_UNSAFE_RENAME` forced off: commits rely on
    /// conditional PUT, never on the unsafe copy-then-delete rename, even if the variable is
    /// set in the environment (delta-rs reads it from there too).
    pub fn delta_storage_options(&self) -> HashMap<String, String> {
        let mut options = HashMap::new();
        if self.s3.is_none() {
            return options;
        }
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ALLOW_HTTP"] {
            if let Some(value) = env(name) {
                options.insert(name.to_string(), value);
            }
        }
        if let Some(endpoint) = env("AWS_ENDPOINT_URL").or_else(|| env("AWS_ENDPOINT")) {
            options.insert("AWS_ENDPOINT_URL".into(), endpoint);
        }
        let region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into());
        options.insert("AWS_REGION".into(), region);
        options.insert("AWS_S3_ALLOW_UNSAFE_RENAME".into(), "false".into());
        options.insert("max_retries".into(), retry_config().max_retries.to_string());
        options.insert("retry_timeout".into(), "30s".into());
        options
    }

    /// The URL DataFusion knows the lake's object store by: `file:///` for a local folder,
    /// `s3://bucket` on S3.
    pub fn object_store_url(&self) -> Option<Url> {
        match (&self.local_root, &self.s3) {
            (Some(_), _) => Url::parse("file:///").ok(),
            (None, Some(s3)) => Url::parse(&format!("s3://{}", s3.bucket)).ok(),
            _ => None,
        }
    }

    /// The URL of the lake's root folder, with a trailing slash: `file:///abs/lake/` or
    /// `s3://bucket/prefix/`.
    pub fn root_url(&self) -> Option<String> {
        match (&self.local_root, &self.s3) {
            (Some(root), _) => Some(format!("file://{}/", root.display())),
            (None, Some(s3)) if s3.prefix.is_empty() => Some(format!("s3://{}/", s3.bucket)),
            (None, Some(s3)) => Some(format!("s3://{}/{}/", s3.bucket, s3.prefix)),
            _ => None,
        }
    }

    /// Registers the lake's object store with a DataFusion session (on S3 with the same
    /// configuration as every other client of the lake: retries, region default) and returns
    /// the root URL to read under (see [`Self::root_url`]). A local folder needs no
    /// registration (DataFusion reads `file://` itself).
    pub fn register_in(&self, ctx: &SessionContext) -> Result<Option<String>, StoreError> {
        if let (None, Some(s3), Some(url)) = (&self.local_root, &self.s3, self.object_store_url()) {
            let store = s3_builder(&s3.bucket)
                .build()
                .map_err(|source| StoreError::Config { what: "lake", location: self.display.clone(), source })?;
            ctx.runtime_env().register_object_store(&url, Arc::new(store));
        }
        Ok(self.root_url())
    }
}
