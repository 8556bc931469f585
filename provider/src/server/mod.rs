//! The tfplugin6 `Provider` service: decodes each request, dispatches it by type name to
//! a [`Resource`], applies the plan rules, and encodes the answer.
//!
//! User-facing problems always travel as diagnostics in the response; gRPC status errors
//! are kept for requests Terraform should never send.

mod convert;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tf_cty::Value;
use tfplugin_proto::tfplugin6 as pb;
use tfplugin_proto::tfplugin6::provider_server::Provider;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::diag::{Diagnostic, Diagnostics};
use crate::libvirt::Host;
use crate::model::{Field, Model};
use crate::registry::Registry;
use crate::resources::{Context, DataSource, EphemeralResource, Resource};
use crate::schema::{self, Attribute, Block, Schema};

pub use convert::attribute_path;

/// The provider's gRPC service.
pub struct ProviderService {
    registry: Registry,
    provider_schema: Schema,
    /// Cancelled by `StopProvider`; replaced afterwards so later operations can run.
    stop: Mutex<CancellationToken>,
    /// Encoded schemas, built once: Terraform asks for them on every provider start.
    schemas: HashMap<String, pb::Schema>,
    data_source_schemas: HashMap<String, pb::Schema>,
    ephemeral_resource_schemas: HashMap<String, pb::Schema>,
    /// Set by `ConfigureProvider`; `None` before that or when the URI is not known yet.
    host: Mutex<Option<Arc<Host>>>,
}

impl ProviderService {
    /// A service for the resources in `registry`.
    pub fn new(registry: Registry) -> Self {
        let schemas = registry.iter().map(|r| (r.type_name().to_string(), convert::schema(r.schema()))).collect();
        let data_source_schemas =
            registry.data_sources().map(|d| (d.type_name().to_string(), convert::schema(d.schema()))).collect();
        let ephemeral_resource_schemas =
            registry.ephemeral_resources().map(|e| (e.type_name().to_string(), convert::schema(e.schema()))).collect();
        ProviderService {
            registry,
            provider_schema: provider_schema(),
            stop: Mutex::new(CancellationToken::new()),
            schemas,
            data_source_schemas,
            ephemeral_resource_schemas,
            host: Mutex::new(None),
        }
    }

    fn context(&self) -> Context {
        let cancel = self.stop.lock().map(|t| t.clone()).unwrap_or_default();
        let host = self.host.lock().ok().and_then(|h| h.clone());
        Context { cancel, host }
    }

    /// Schemas that break Terraform's rules (a bug in this provider): Terraform is told, and
    /// stops, instead of misreading them.
    fn schema_problems(&self) -> Diagnostics {
        let resources = self.registry.iter().map(|r| (r.type_name(), r.schema()));
        let data_sources = self.registry.data_sources().map(|d| (d.type_name(), d.schema()));
        let mut diags = Diagnostics::new();
        for (name, schema) in std::iter::once(("provider", &self.provider_schema)).chain(resources).chain(data_sources)
        {
            for problem in schema.problems() {
                diags.push(Diagnostic::error(
                    "Invalid provider schema",
                    format!("{name}: {problem}; this is a bug in the provider, please report it."),
                ));
            }
        }
        diags
    }

    fn data_source(&self, type_name: &str) -> Result<&Arc<dyn DataSource>, Diagnostic> {
        self.registry.data_source(type_name).ok_or_else(|| unknown_data_source(type_name))
    }

    fn ephemeral_resource(&self, type_name: &str) -> Result<&Arc<dyn EphemeralResource>, Diagnostic> {
        self.registry.ephemeral_resource(type_name).ok_or_else(|| {
            Diagnostic::error(
                "Unknown ephemeral resource type",
                format!(
                    "This provider has no ephemeral resource type {type_name:?}; check the spelling and the provider version."
                ),
            )
        })
    }

    fn resource(&self, type_name: &str) -> Result<&Arc<dyn Resource>, Diagnostic> {
        self.registry.get(type_name).ok_or_else(|| {
            Diagnostic::error(
                "Unknown resource type",
                format!(
                    "This provider has no resource type {type_name:?}; check the spelling and the provider version."
                ),
            )
        })
    }
}

/// Runs `f`, turning an early-returned diagnostic into the response's diagnostics.
fn diags_of(result: Result<Diagnostics, Diagnostic>) -> Vec<pb::Diagnostic> {
    convert::diagnostics(result.unwrap_or_else(Diagnostics::from))
}

fn now_known(value: &Value, what: &str) -> Result<(), Diagnostic> {
    if value.is_wholly_known() {
        Ok(())
    } else {
        Err(Diagnostic::error(
            "Provider produced an unknown value",
            format!("{what} still holds unknown values after the operation; this is a bug in the provider."),
        ))
    }
}

#[tonic::async_trait]
impl Provider for ProviderService {
    async fn get_metadata(
        &self,
        _request: Request<pb::get_metadata::Request>,
    ) -> Result<Response<pb::get_metadata::Response>, Status> {
        let mut resources: Vec<_> = self
            .registry
            .iter()
            .map(|r| pb::get_metadata::ResourceMetadata { type_name: r.type_name().into() })
            .collect();
        resources.sort_by(|a, b| a.type_name.cmp(&b.type_name));
        let mut data_sources: Vec<_> = self
            .registry
            .data_sources()
            .map(|d| pb::get_metadata::DataSourceMetadata { type_name: d.type_name().into() })
            .collect();
        data_sources.sort_by(|a, b| a.type_name.cmp(&b.type_name));
        let mut ephemeral_resources: Vec<_> = self
            .registry
            .ephemeral_resources()
            .map(|e| pb::get_metadata::EphemeralMetadata { type_name: e.type_name().into() })
            .collect();
        ephemeral_resources.sort_by(|a, b| a.type_name.cmp(&b.type_name));
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: Some(capabilities()),
            resources,
            data_sources,
            ephemeral_resources,
            ..Default::default()
        }))
    }

    async fn get_provider_schema(
        &self,
        _request: Request<pb::get_provider_schema::Request>,
    ) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        Ok(Response::new(pb::get_provider_schema::Response {
            provider: Some(convert::schema(&self.provider_schema)),
            resource_schemas: self.schemas.clone(),
            data_source_schemas: self.data_source_schemas.clone(),
            // Terraform before 1.10 neither reads this field nor calls the ephemeral RPCs.
            ephemeral_resource_schemas: self.ephemeral_resource_schemas.clone(),
            server_capabilities: Some(capabilities()),
            diagnostics: convert::diagnostics(self.schema_problems()),
            ..Default::default()
        }))
    }

    async fn validate_provider_config(
        &self,
        request: Request<pb::validate_provider_config::Request>,
    ) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        let req = request.into_inner();
        let result = (|| {
            let config = convert::decode(req.config.as_ref(), self.provider_schema.value_type(), "provider config")?;
            Ok(schema::validate_attributes(&self.provider_schema.block, &config))
        })();
        Ok(Response::new(pb::validate_provider_config::Response { diagnostics: diags_of(result) }))
    }

    async fn configure_provider(
        &self,
        request: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        let req = request.into_inner();
        tracing::debug!(terraform_version = %req.terraform_version, "configure provider");
        let result = (|| {
            let config = convert::decode(req.config.as_ref(), self.provider_schema.value_type(), "provider config")?;
            let diags = schema::validate_attributes(&self.provider_schema.block, &config);
            // An unknown URI (it depends on a resource not created yet) leaves the host unset:
            // plans of creates still work, and anything needing the host says why it cannot.
            let host = match ProviderPlan::from_value(&config)?.uri {
                Field::Unknown => None,
                uri => Some(Host::new(uri.known().cloned())),
            };
            if let Ok(mut slot) = self.host.lock() {
                *slot = host;
            }
            Ok(diags)
        })();
        Ok(Response::new(pb::configure_provider::Response { diagnostics: diags_of(result) }))
    }

    async fn validate_resource_config(
        &self,
        request: Request<pb::validate_resource_config::Request>,
    ) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        let req = request.into_inner();
        // Terraform before 1.11 sends no capabilities: no write-only support.
        let write_only_allowed = req.client_capabilities.as_ref().is_some_and(|c| c.write_only_attributes_allowed);
        let result = (|| {
            let resource = self.resource(&req.type_name)?;
            let config = convert::decode(req.config.as_ref(), resource.schema().value_type(), "config")?;
            let mut diags = schema::check_write_only(&resource.schema().block, &config, write_only_allowed);
            diags.extend(validate_config(resource.as_ref(), &config));
            Ok(diags)
        })();
        Ok(Response::new(pb::validate_resource_config::Response { diagnostics: diags_of(result) }))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<pb::upgrade_resource_state::Request>,
    ) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        let req = request.into_inner();
        let result = (|| {
            let resource = self.resource(&req.type_name)?;
            let schema = resource.schema();
            let raw = req.raw_state.unwrap_or_default();
            if raw.json.is_empty() {
                return Err(Diagnostic::error(
                    "Unsupported state format",
                    "The stored state has no JSON form (pre-0.12 flatmap state); re-import the resource.",
                ));
            }
            let json = if req.version == schema.version {
                raw.json
            } else if req.version > schema.version {
                return Err(Diagnostic::error(
                    "State from a newer provider",
                    format!(
                        "{} state was written with schema version {}, newer than this provider's {}; upgrade the provider.",
                        req.type_name, req.version, schema.version
                    ),
                ));
            } else {
                let parsed: serde_json::Value = serde_json::from_slice(&raw.json)
                    .map_err(|e| Diagnostic::error("Corrupt state", format!("stored state is not JSON: {e}")))?;
                let upgraded = resource.upgrade_state(req.version, parsed)?;
                serde_json::to_vec(&upgraded).map_err(|e| Diagnostic::error("Internal error", e.to_string()))?
            };
            let ty = schema.value_type();
            let value = tf_cty::json::decode(&json, ty).map_err(|e| {
                Diagnostic::error("Corrupt state", format!("cannot read stored {} state: {e}", req.type_name))
            })?;
            convert::encode(&schema::strip_write_only(&schema.block, &value), ty, "upgraded state")
        })();
        Ok(Response::new(match result {
            Ok(state) => pb::upgrade_resource_state::Response { upgraded_state: Some(state), diagnostics: vec![] },
            Err(d) => {
                pb::upgrade_resource_state::Response { upgraded_state: None, diagnostics: vec![convert::diagnostic(d)] }
            }
        }))
    }

    async fn read_resource(
        &self,
        request: Request<pb::read_resource::Request>,
    ) -> Result<Response<pb::read_resource::Response>, Status> {
        let req = request.into_inner();
        let ctx = self.context();
        let mut response = pb::read_resource::Response { private: req.private.clone(), ..Default::default() };
        let resource = match self.resource(&req.type_name) {
            Ok(r) => r,
            Err(d) => {
                response.diagnostics.push(convert::diagnostic(d));
                return Ok(Response::new(response));
            }
        };
        let ty = resource.schema().value_type();
        let outcome = async {
            let current = convert::decode(req.current_state.as_ref(), ty, "current state")?;
            tracing::debug!(type_name = %req.type_name, "read resource");
            let new_state = resource.read(&ctx, &current).await?.unwrap_or(Value::Null);
            let new_state = schema::strip_write_only(&resource.schema().block, &new_state);
            now_known(&new_state, "the refreshed state")?;
            Ok::<_, crate::resources::Failure>(new_state)
        }
        .await;
        match outcome {
            Ok(state) => match convert::encode(&state, ty, "refreshed state") {
                Ok(dv) => response.new_state = Some(dv),
                Err(d) => response.diagnostics.push(convert::diagnostic(d)),
            },
            Err(failure) => {
                // Keep the object tracked as it was: a failed refresh must not drop it.
                response.new_state = req.current_state;
                response.diagnostics = convert::diagnostics(failure.diagnostics);
            }
        }
        Ok(Response::new(response))
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        let req = request.into_inner();
        let ctx = self.context();
        let result = async {
            let resource = self.resource(&req.type_name)?;
            let schema = resource.schema();
            let ty = schema.value_type();
            let prior = convert::decode(req.prior_state.as_ref(), ty, "prior state")?;
            let proposed = convert::decode(req.proposed_new_state.as_ref(), ty, "proposed new state")?;
            let config = convert::decode(req.config.as_ref(), ty, "config")?;
            if proposed.is_null() {
                return Ok((convert::encode(&Value::Null, ty, "planned state")?, vec![], Diagnostics::new()));
            }
            // Values unknown at validate time may be known now: check them again.
            let mut diags = validate_config(resource.as_ref(), &config);
            if diags.has_errors() {
                return Ok((convert::encode(&Value::Null, ty, "planned state")?, vec![], diags));
            }
            let mut planned = schema::plan_resource_change(schema, &prior, &proposed, &config);
            diags.extend(resource.modify_plan(&ctx, &prior, &config, &mut planned).await);
            let planned = schema::strip_write_only(&schema.block, &planned);
            if let Err(problem) = schema::check_plan_valid(schema, &prior, &config, &planned) {
                diags.push(Diagnostic::error(
                    "Provider produced an invalid plan",
                    format!("{} {problem}; this is a bug in the provider, please report it.", req.type_name),
                ));
            }
            let mut replace = schema::replace_paths(schema, &prior, &planned);
            if !prior.is_null() {
                replace.extend(resource.replace_when(&prior, &planned));
            }
            Ok::<_, Diagnostic>((convert::encode(&planned, ty, "planned state")?, replace, diags))
        }
        .await;
        Ok(Response::new(match result {
            Ok((planned, replace, diags)) => pb::plan_resource_change::Response {
                planned_state: Some(planned),
                requires_replace: replace.iter().map(convert::attribute_path).collect(),
                planned_private: req.prior_private,
                diagnostics: convert::diagnostics(diags),
                ..Default::default()
            },
            Err(d) => {
                pb::plan_resource_change::Response { diagnostics: vec![convert::diagnostic(d)], ..Default::default() }
            }
        }))
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        let req = request.into_inner();
        let ctx = self.context();
        let mut response =
            pb::apply_resource_change::Response { private: req.planned_private.clone(), ..Default::default() };
        let resource = match self.resource(&req.type_name) {
            Ok(r) => r,
            Err(d) => {
                response.diagnostics.push(convert::diagnostic(d));
                return Ok(Response::new(response));
            }
        };
        let block = &resource.schema().block;
        let ty = resource.schema().value_type();
        let decoded = (|| {
            Ok::<_, Diagnostic>((
                convert::decode(req.prior_state.as_ref(), ty, "prior state")?,
                convert::decode(req.planned_state.as_ref(), ty, "planned state")?,
                convert::decode(req.config.as_ref(), ty, "config")?,
            ))
        })();
        let (prior, planned, config) = match decoded {
            Ok(v) => v,
            Err(d) => {
                response.new_state = req.prior_state;
                response.diagnostics.push(convert::diagnostic(d));
                return Ok(Response::new(response));
            }
        };
        let type_name = &req.type_name;
        // Write-only values are in the configuration only: create and update get them merged
        // into the planned value, and whatever comes back has them nulled below.
        let outcome = if planned.is_null() {
            tracing::info!(%type_name, "delete");
            resource.delete(&ctx, &prior).await.map(|()| Value::Null)
        } else if prior.is_null() {
            tracing::info!(%type_name, "create");
            resource.create(&ctx, &schema::with_write_only(block, &planned, &config)).await
        } else {
            tracing::info!(%type_name, "update");
            resource.update(&ctx, &prior, &schema::with_write_only(block, &planned, &config)).await
        };
        let new_state = match outcome {
            Ok(state) => match now_known(&state, "the new state") {
                Ok(()) => state,
                Err(d) => {
                    response.diagnostics.push(convert::diagnostic(d));
                    prior.clone()
                }
            },
            Err(failure) => {
                response.diagnostics = convert::diagnostics(failure.diagnostics);
                // Whatever exists stays tracked: a partly created object, else the prior one.
                failure.partial_state.unwrap_or(prior.clone())
            }
        };
        match convert::encode(&schema::strip_write_only(block, &new_state), ty, "new state") {
            Ok(dv) => response.new_state = Some(dv),
            Err(d) => response.diagnostics.push(convert::diagnostic(d)),
        }
        Ok(Response::new(response))
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        let req = request.into_inner();
        let ctx = self.context();
        let mut response = pb::import_resource_state::Response::default();
        let outcome = async {
            let resource = self.resource(&req.type_name)?;
            let ty = resource.schema().value_type();
            tracing::info!(type_name = %req.type_name, "import");
            let state = schema::strip_write_only(&resource.schema().block, &resource.import(&ctx, &req.id).await?);
            now_known(&state, "the imported state")?;
            Ok::<_, crate::resources::Failure>(convert::encode(&state, ty, "imported state")?)
        }
        .await;
        match outcome {
            Ok(state) => response.imported_resources.push(pb::import_resource_state::ImportedResource {
                type_name: req.type_name,
                state: Some(state),
                ..Default::default()
            }),
            Err(failure) => response.diagnostics = convert::diagnostics(failure.diagnostics),
        }
        Ok(Response::new(response))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<pb::validate_data_resource_config::Request>,
    ) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        let req = request.into_inner();
        let result = (|| {
            let data_source = self.data_source(&req.type_name)?;
            let config = convert::decode(req.config.as_ref(), data_source.schema().value_type(), "config")?;
            Ok(schema::validate_attributes(&data_source.schema().block, &config))
        })();
        Ok(Response::new(pb::validate_data_resource_config::Response { diagnostics: diags_of(result) }))
    }

    async fn read_data_source(
        &self,
        request: Request<pb::read_data_source::Request>,
    ) -> Result<Response<pb::read_data_source::Response>, Status> {
        let req = request.into_inner();
        let ctx = self.context();
        let outcome = async {
            let data_source = self.data_source(&req.type_name)?;
            let ty = data_source.schema().value_type();
            let config = convert::decode(req.config.as_ref(), ty, "config")?;
            let diags = schema::validate_attributes(&data_source.schema().block, &config);
            if diags.has_errors() {
                return Err(diags.into());
            }
            tracing::debug!(type_name = %req.type_name, "read data source");
            let state = data_source.read(&ctx, &config).await?;
            now_known(&state, "the data source's result")?;
            let encoded = convert::encode(&state, ty, "data source state")?;
            Ok::<_, crate::resources::Failure>((encoded, diags))
        }
        .await;
        Ok(Response::new(match outcome {
            Ok((state, diags)) => pb::read_data_source::Response {
                state: Some(state),
                diagnostics: convert::diagnostics(diags),
                ..Default::default()
            },
            Err(failure) => pb::read_data_source::Response {
                diagnostics: convert::diagnostics(failure.diagnostics),
                ..Default::default()
            },
        }))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        request: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> Result<Response<pb::validate_ephemeral_resource_config::Response>, Status> {
        let req = request.into_inner();
        let result = (|| {
            let ephemeral = self.ephemeral_resource(&req.type_name)?;
            let config = convert::decode(req.config.as_ref(), ephemeral.schema().value_type(), "config")?;
            Ok(validate_ephemeral_config(ephemeral.as_ref(), &config))
        })();
        Ok(Response::new(pb::validate_ephemeral_resource_config::Response { diagnostics: diags_of(result) }))
    }

    async fn open_ephemeral_resource(
        &self,
        request: Request<pb::open_ephemeral_resource::Request>,
    ) -> Result<Response<pb::open_ephemeral_resource::Response>, Status> {
        let req = request.into_inner();
        let ctx = self.context();
        let outcome = async {
            let ephemeral = self.ephemeral_resource(&req.type_name)?;
            let ty = ephemeral.schema().value_type();
            let config = convert::decode(req.config.as_ref(), ty, "config")?;
            // Terraform opens only wholly known configurations; check again all the same.
            now_known(&config, "the configuration")?;
            let mut diags = validate_ephemeral_config(ephemeral.as_ref(), &config);
            if diags.has_errors() {
                return Err(diags.into());
            }
            tracing::debug!(type_name = %req.type_name, "open ephemeral resource");
            let opened = ephemeral.open(&ctx, &config).await?;
            now_known(&opened.result, "the ephemeral resource's result")?;
            let result = convert::encode(&opened.result, ty, "ephemeral resource result")?;
            diags.extend(opened.diagnostics);
            Ok::<_, crate::resources::Failure>((result, opened.private, diags))
        }
        .await;
        Ok(Response::new(match outcome {
            // No renew_at: Terraform never renews, and closes when it is done with the value.
            Ok((result, private, diags)) => pb::open_ephemeral_resource::Response {
                result: Some(result),
                private,
                diagnostics: convert::diagnostics(diags),
                ..Default::default()
            },
            Err(failure) => pb::open_ephemeral_resource::Response {
                diagnostics: convert::diagnostics(failure.diagnostics),
                ..Default::default()
            },
        }))
    }

    async fn renew_ephemeral_resource(
        &self,
        request: Request<pb::renew_ephemeral_resource::Request>,
    ) -> Result<Response<pb::renew_ephemeral_resource::Response>, Status> {
        let req = request.into_inner();
        let ctx = self.context();
        let outcome = async {
            let ephemeral = self.ephemeral_resource(&req.type_name)?;
            tracing::debug!(type_name = %req.type_name, "renew ephemeral resource");
            ephemeral.renew(&ctx, req.private.as_deref()).await
        }
        .await;
        // No renew_at in the answer: nothing more to renew.
        Ok(Response::new(pb::renew_ephemeral_resource::Response {
            diagnostics: convert::diagnostics(outcome.err().map(|f| f.diagnostics).unwrap_or_default()),
            renew_at: None,
            private: req.private,
        }))
    }

    async fn close_ephemeral_resource(
        &self,
        request: Request<pb::close_ephemeral_resource::Request>,
    ) -> Result<Response<pb::close_ephemeral_resource::Response>, Status> {
        let req = request.into_inner();
        let ctx = self.context();
        let outcome = async {
            let ephemeral = self.ephemeral_resource(&req.type_name)?;
            tracing::debug!(type_name = %req.type_name, "close ephemeral resource");
            ephemeral.close(&ctx, req.private.as_deref()).await
        }
        .await;
        Ok(Response::new(pb::close_ephemeral_resource::Response {
            diagnostics: convert::diagnostics(outcome.err().map(|f| f.diagnostics).unwrap_or_default()),
        }))
    }

    async fn stop_provider(
        &self,
        _request: Request<pb::stop_provider::Request>,
    ) -> Result<Response<pb::stop_provider::Response>, Status> {
        tracing::info!("stop requested: cancelling operations in flight");
        if let Ok(mut token) = self.stop.lock() {
            token.cancel();
            *token = CancellationToken::new();
        }
        Ok(Response::new(pb::stop_provider::Response::default()))
    }
}

/// Attribute validators plus the resource's own cross-attribute checks.
fn validate_config(resource: &dyn Resource, config: &Value) -> Diagnostics {
    let mut diags = schema::validate_attributes(&resource.schema().block, config);
    diags.extend(resource.validate(config));
    diags
}

/// Attribute validators plus the ephemeral resource's own checks.
fn validate_ephemeral_config(ephemeral: &dyn EphemeralResource, config: &Value) -> Diagnostics {
    let mut diags = schema::validate_attributes(&ephemeral.schema().block, config);
    diags.extend(ephemeral.validate(config));
    diags
}

crate::model! {
    /// The provider block (`ProviderPlan`: while its values may still be unknown, which is how
    /// configure reads it; the model itself is only checked against the schema).
    #[allow(dead_code)]
    struct ProviderModel / ProviderPlan {
        uri: Option<String>,
    }
}

/// The provider block: which libvirt host this provider instance manages.
fn provider_schema() -> Schema {
    Schema::new(
        0,
        Block::new(
            "The kvm provider: libvirt/KVM hosts and GitOps bootstrap. One provider instance manages one \
             libvirt host; use provider aliases for several hosts. The connection opens only when an \
             operation needs the host, so `terraform validate` and plans of new resources work without one.",
        )
        .attribute(
            Attribute::optional("uri", tf_cty::Type::String)
                .describe(
                    "libvirt connection URI, e.g. `qemu:///system`, \
                     `qemu+ssh://admin@kvm1.example.com/system?keyfile=/home/ci/.ssh/id_ed25519`, \
                     `qemu+tls://kvm1.example.com/system`. Default: `LIBVIRT_DEFAULT_URI`, else `qemu:///system`.",
                )
                .validate(crate::libvirt::uri_validator()),
        ),
    )
}

fn unknown_data_source(type_name: &str) -> Diagnostic {
    Diagnostic::error(
        "Unknown data source",
        format!("This provider has no data source {type_name:?}; check the spelling and the provider version."),
    )
}

fn capabilities() -> pb::ServerCapabilities {
    // plan_destroy: we plan a destroy as null, which is what Terraform expects.
    pb::ServerCapabilities { plan_destroy: true, ..Default::default() }
}

#[cfg(test)]
mod tests;
