//! Switchyard: a declarative integration engine for CRM and payment data.
//!
//! The host loads **connector specs** (one per external system), tenants' **mapping specs**
//! (field, conditional and computed mappings, typed properties, payload templates, duplicate
//! detection, workflow triggers), **attribution specs** and **plugin manifests**, compiles them
//! once, and then runs records through them.
//!
//! ```
//! use switchyard::spec::{self, SpecKind};
//! let text = r#"{"spec_version": 1, "tenant": "acme", "connector": "hubspot",
//!                "crm_config": {"type": "hubspot", "field_mappings": {"email": "customer_email"}}}"#;
//! let source = spec::SourceFile::parse("route.json", text.to_string(), spec::SyntaxFormat::Json).unwrap();
//! let (loaded, diags) = spec::load_source(source);
//! assert_eq!(loaded.kind, Some(SpecKind::Mapping));
//! assert!(!diags.has_errors());
//! ```

pub mod attribution;
pub mod connector;
pub mod dedupe;
pub mod diag;
pub mod engine;
pub mod expr;
pub mod mapping;
pub mod plugin;
pub mod record;
pub mod secrets;
pub mod spec;
pub mod store;
pub mod template;
