//! What the protocol's metadata calls say about the server and its models
//! (ServerMetadata, ModelMetadata, ModelConfig, RepositoryIndex).

use std::collections::BTreeMap;

use dfscan_proto::inference::model_metadata_response::TensorMetadata;
use dfscan_proto::inference::repository_index_response::ModelIndex;
use dfscan_proto::inference::{
    DataType, ModelConfig, ModelInput, ModelMetadataResponse, ModelOutput, RepositoryIndexResponse,
    ServerMetadataResponse,
};

use super::{INPUT, OUTPUT_FACES, OUTPUT_LABEL, OUTPUT_PROBABILITIES, VERSION};
use crate::service::ModelView;

const PLATFORM: &str = "dfscan_vit";

pub(super) fn server() -> ServerMetadataResponse {
    ServerMetadataResponse {
        name: "dfscan".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: vec!["model_configuration".into(), "model_repository".into()],
    }
}

/// Label count as a dimension: -1 while no live worker has told it.
fn label_dim(view: &ModelView) -> i64 {
    if view.labels.is_empty() {
        -1
    } else {
        view.labels.len() as i64
    }
}

pub(super) fn model(name: String, view: &ModelView) -> ModelMetadataResponse {
    let tensor = |name: &str, datatype: &str, shape: Vec<i64>| TensorMetadata {
        name: name.into(),
        datatype: datatype.into(),
        shape,
    };
    ModelMetadataResponse {
        name,
        versions: vec![VERSION.into()],
        platform: PLATFORM.into(),
        inputs: vec![tensor(INPUT, "BYTES", vec![-1])],
        outputs: vec![
            tensor(OUTPUT_PROBABILITIES, "FP32", vec![-1, label_dim(view)]),
            tensor(OUTPUT_LABEL, "BYTES", vec![-1]),
            tensor(OUTPUT_FACES, "BYTES", vec![-1]),
        ],
    }
}

/// Triton's model configuration: batching over the first dimension, up to
/// `max_batch` images per call, so the per-image dims leave it out.
pub(super) fn config(name: String, view: &ModelView, max_batch: usize) -> ModelConfig {
    ModelConfig {
        name,
        platform: PLATFORM.into(),
        backend: "dfscan".into(),
        max_batch_size: i32::try_from(max_batch).unwrap_or(i32::MAX),
        input: vec![ModelInput {
            name: INPUT.into(),
            data_type: DataType::TypeString as i32,
            dims: vec![1],
        }],
        output: vec![
            ModelOutput {
                name: OUTPUT_PROBABILITIES.into(),
                data_type: DataType::TypeFp32 as i32,
                dims: vec![label_dim(view)],
                label_filename: String::new(),
            },
            ModelOutput {
                name: OUTPUT_LABEL.into(),
                data_type: DataType::TypeString as i32,
                dims: vec![1],
                label_filename: String::new(),
            },
            ModelOutput {
                name: OUTPUT_FACES.into(),
                data_type: DataType::TypeString as i32,
                dims: vec![1],
                label_filename: String::new(),
            },
        ],
    }
}

/// Every model the cluster knows (with `ready_only`, those a live worker
/// serves), as Triton's repository index lists them.
pub(super) fn index(
    views: BTreeMap<String, ModelView>,
    ready_only: bool,
) -> RepositoryIndexResponse {
    let models = views
        .into_iter()
        .filter(|(_, view)| !ready_only || view.workers > 0)
        .map(|(name, view)| {
            let (state, reason) = if view.workers > 0 {
                ("READY", String::new())
            } else {
                ("UNAVAILABLE", "no live worker serves it".to_string())
            };
            ModelIndex {
                name,
                version: VERSION.into(),
                state: state.into(),
                reason,
            }
        })
        .collect();
    RepositoryIndexResponse { models }
}
