//! Switchyard: a declarative integration engine for CRM and payment data.
//!
//! The host loads **connector specs** (one per external system), tenants' **mapping specs**
//! (field, conditional and computed mappings, typed properties, payload templates, duplicate
//! detection, workflow triggers), **attribution specs** and **plugin manifests**, compiles them
//! once, and then runs records through them. [`engine::Engine`] is the one way in.
//!
//! Load, map, deliver — here to a local emulator of HubSpot (crate `switchyard-sandbox`)
//! standing in for the CRM:
//!
//! ```
//! use switchyard::engine::{Engine, RouteOptions, SandboxBinding};
//! use switchyard_sandbox::{SandboxOptions, Vendor};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The stand-in CRM, on 127.0.0.1, with its own test credentials.
//! let crm = switchyard_sandbox::start(Vendor::Hubspot, SandboxOptions::default()).await?;
//! let sandbox = SandboxBinding::new(crm.base_url(), crm.credentials().iter());
//!
//! // One engine: connector specs, a store (none here: nothing kept between runs), secrets.
//! let engine = Engine::builder()
//!     .connectors_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../connector-specs"))
//!     .build()?;
//!
//! // A tenant's mapping spec, compiled once into a route.
//! let route = engine.route_text(
//!     "acme-hubspot.json".as_ref(),
//!     r#"{"spec_version": 1, "tenant": "acme", "connector": "hubspot",
//!         "crm_config": {"type": "hubspot",
//!                        "field_mappings": {"email": "customer_email",
//!                                           "firstname": "first_name"}}}"#.into(),
//!     RouteOptions { sandbox: Some(sandbox), ..RouteOptions::default() },
//! )?;
//!
//! // Map a record, then deliver it.
//! let record = serde_json::json!({"customer_email": "ada@example.com", "first_name": "Ada"});
//! let mapped = route.map(&record)?;
//! let report = route.deliver(vec![route.item("call-1", mapped)]).await;
//! assert_eq!((report.created, report.failed), (1, 0));
//!
//! let contacts = crm.records("contacts");
//! assert_eq!(contacts[0]["properties"]["firstname"], "Ada");
//! crm.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Specs can also be checked without an engine:
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
pub mod spectest;
pub mod store;
pub mod template;
pub mod validate;
