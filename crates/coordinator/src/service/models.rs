//! Which models can be scored: those configured on the coordinator plus
//! those live workers serve. SubmitJob resolves a job's model here;
//! ListModels, ListWorkers and the KServe endpoint report the same view.

use std::collections::{BTreeMap, BTreeSet};

use dfscan_proto::v1::{self as pb, ModelIdentity};
use tonic::Status;

use dfscan_queue::{JobQueue, QueueError};

use super::{invalid, ScoringService};
use crate::error::{shown, status};
use crate::CoordinatorSettings;

/// What the cluster knows of one model.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelView {
    /// Live workers serving it.
    pub workers: u32,
    /// The distinct checkpoints those workers run.
    pub identities: Vec<ModelIdentity>,
    /// Its labels in class order, as a live worker reported them (empty
    /// while none is live).
    pub labels: Vec<String>,
}

/// Every model that can be scored, by name: those `settings` configure
/// and those live workers serve.
pub(crate) async fn model_views(
    queue: &dyn JobQueue,
    settings: &CoordinatorSettings,
) -> Result<BTreeMap<String, ModelView>, QueueError> {
    let workers = queue.list_workers().await?;
    let mut models: BTreeMap<String, ModelView> = configured_models(settings)
        .into_iter()
        .map(|name| (name.to_string(), ModelView::default()))
        .collect();
    for worker in workers.into_iter().filter(|w| !w.model.is_empty()) {
        let view = models.entry(worker.model).or_default();
        view.workers += 1;
        if let Some(identity) = worker.identity {
            if !view.identities.contains(&identity) {
                view.identities.push(identity);
            }
        }
        if view.labels.is_empty() {
            view.labels = worker.labels;
        }
    }
    Ok(models)
}

/// Models accepted without a live worker: `models` and `default_model`.
fn configured_models(settings: &CoordinatorSettings) -> BTreeSet<&str> {
    settings
        .models
        .iter()
        .chain(&settings.default_model)
        .map(String::as_str)
        .collect()
}

impl ScoringService {
    /// Every model that can be scored, by name.
    pub(crate) async fn model_views(&self) -> Result<BTreeMap<String, ModelView>, Status> {
        model_views(self.queue.as_ref(), &self.settings)
            .await
            .map_err(status)
    }

    /// The model a job asking for `requested` (empty: none) is queued for:
    /// INVALID_ARGUMENT, naming the known models, when there is none.
    pub(super) async fn resolve_model(&self, requested: &str) -> Result<String, Status> {
        if requested.is_empty() {
            if let Some(model) = &self.settings.default_model {
                return Ok(model.clone());
            }
        } else if configured_models(&self.settings).contains(requested) {
            // Configured: no need to ask the queue about workers.
            return Ok(requested.to_string());
        }
        let workers = self.queue.list_workers().await.map_err(status)?;
        let mut known = configured_models(&self.settings);
        known.extend(
            workers
                .iter()
                .map(|w| w.model.as_str())
                .filter(|m| !m.is_empty()),
        );
        if requested.is_empty() {
            if let [only] = Vec::from_iter(&known)[..] {
                return Ok(only.to_string());
            }
        } else if known.contains(requested) {
            return Ok(requested.to_string());
        }
        Err(invalid(unresolved_model(requested, &known)))
    }
}

/// Why a job for `requested` (empty: none) has no model, given the `known`
/// ones. With none known, it says when workers appear: a worker registers
/// only once its model is loaded and warmed up, so a submit right after
/// starting one is refused without that being anything to fix.
fn unresolved_model(requested: &str, known: &BTreeSet<&str>) -> String {
    let listed = if known.is_empty() {
        "none (no configured models and no live workers; a worker registers once its model \
         is loaded and a warm-up batch has run: wait until `dfscan models` lists it, or \
         configure the model on the coordinator with coordinator.models, or --models)"
            .to_string()
    } else {
        Vec::from_iter(known.iter().copied()).join(", ")
    };
    if requested.is_empty() {
        format!("the job names no model and there is no default; known models: {listed}")
    } else {
        format!("unknown model {}; known models: {listed}", shown(requested))
    }
}

pub(super) async fn list_models(svc: &ScoringService) -> Result<pb::ListModelsResponse, Status> {
    let models = svc.model_views().await?;
    let mut listed = Vec::with_capacity(models.len());
    for (name, view) in models {
        let stats = svc.queue.queue_stats(&name).await.map_err(status)?;
        listed.push(pb::Model {
            name,
            workers: view.workers,
            identities: view.identities,
            queued_items: stats.items,
        });
    }
    Ok(pb::ListModelsResponse { models: listed })
}

pub(super) async fn list_workers(svc: &ScoringService) -> Result<pb::ListWorkersResponse, Status> {
    let workers = svc.queue.list_workers().await.map_err(status)?;
    Ok(pb::ListWorkersResponse { workers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_known_model_says_workers_register_after_warm_up() {
        let none = BTreeSet::new();
        for requested in ["", "vit"] {
            let message = unresolved_model(requested, &none);
            for needle in ["warm-up", "dfscan models", "coordinator.models"] {
                assert!(message.contains(needle), "{needle:?} in {message}");
            }
        }
        let known = BTreeSet::from(["big", "tiny"]);
        assert_eq!(
            unresolved_model("", &known),
            "the job names no model and there is no default; known models: big, tiny"
        );
        assert_eq!(
            unresolved_model("huge", &known),
            "unknown model \"huge\"; known models: big, tiny"
        );
    }
}
