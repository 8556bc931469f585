//! The provider's kinds by name: every resource, data source and ephemeral resource type. The
//! one module that knows them all (the kinds know only the traits in `resources`), so that
//! nothing imports in a circle.

use std::collections::HashMap;
use std::sync::Arc;

use crate::resources::{DataSource, EphemeralResource, Resource};
use crate::{data_sources, ephemeral_resources, resources};

/// All resource, data source and ephemeral resource types of the provider, by name.
#[derive(Clone)]
pub struct Registry {
    resources: HashMap<&'static str, Arc<dyn Resource>>,
    data_sources: HashMap<&'static str, Arc<dyn DataSource>>,
    ephemeral_resources: HashMap<&'static str, Arc<dyn EphemeralResource>>,
}

impl Registry {
    /// The provider's resources and data sources.
    pub fn builtin() -> Self {
        Registry::with(vec![
            Arc::new(resources::sealing_key::SealingKey::new()),
            Arc::new(resources::sealed_secret::SealedSecret::new()),
            Arc::new(resources::network::Network::new()),
            Arc::new(resources::pool::Pool::new()),
            Arc::new(resources::volume::Volume::new()),
            Arc::new(resources::instance::Instance::new()),
            Arc::new(resources::cluster_pki::ClusterPkiResource::new()),
            Arc::new(resources::gitops_cluster::GitopsCluster::new()),
        ])
        .with_data_sources(vec![
            Arc::new(data_sources::host::HostInfo::new()),
            Arc::new(data_sources::sealed_secrets_check::SealedSecretsCheck::new()),
        ])
        .with_ephemeral_resources(vec![Arc::new(ephemeral_resources::cluster_credentials::ClusterCredentials::new())])
    }

    /// A registry of the given resources (and no data sources).
    pub fn with(list: Vec<Arc<dyn Resource>>) -> Self {
        Registry {
            resources: list.into_iter().map(|r| (r.type_name(), r)).collect(),
            data_sources: HashMap::new(),
            ephemeral_resources: HashMap::new(),
        }
    }

    /// This registry plus the given data sources.
    pub fn with_data_sources(mut self, list: Vec<Arc<dyn DataSource>>) -> Self {
        self.data_sources.extend(list.into_iter().map(|d| (d.type_name(), d)));
        self
    }

    /// The data source type called `name`.
    pub fn data_source(&self, name: &str) -> Option<&Arc<dyn DataSource>> {
        self.data_sources.get(name)
    }

    /// Every data source type.
    pub fn data_sources(&self) -> impl Iterator<Item = &Arc<dyn DataSource>> {
        self.data_sources.values()
    }

    /// This registry plus the given ephemeral resources.
    pub fn with_ephemeral_resources(mut self, list: Vec<Arc<dyn EphemeralResource>>) -> Self {
        self.ephemeral_resources.extend(list.into_iter().map(|e| (e.type_name(), e)));
        self
    }

    /// The ephemeral resource type called `name`.
    pub fn ephemeral_resource(&self, name: &str) -> Option<&Arc<dyn EphemeralResource>> {
        self.ephemeral_resources.get(name)
    }

    /// Every ephemeral resource type.
    pub fn ephemeral_resources(&self) -> impl Iterator<Item = &Arc<dyn EphemeralResource>> {
        self.ephemeral_resources.values()
    }

    /// The resource type called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Resource>> {
        self.resources.get(name)
    }

    /// Every resource type.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Resource>> {
        self.resources.values()
    }
}
