//! The named cases of `inference.GRPCInferenceService`: the ModelInfer
//! shape that once aborted the coordinator, its neighbours, and the names
//! and versions of the metadata RPCs.

use dfscan_proto::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use dfscan_proto::inference::{
    InferParameter, InferTensorContents, ModelConfigRequest, ModelInferRequest,
    ModelMetadataRequest, ModelReadyRequest, RepositoryIndexRequest,
};

use super::*;

/// The named cases of `inference.GRPCInferenceService`.
pub(super) fn named(ctx: &Context) -> Vec<Case> {
    let huge = "x".repeat(MB);
    let controls = "\0\x01\x07\x08\n\r\t\x1b\x7f".repeat(1000);
    let not_utf8: &[u8] = &[b'a', 0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80];
    let model = || ctx.model.clone();
    vec![
        // ModelInfer: the crash, then its friends.
        one(
            Rpc::ModelInfer,
            "shape [2^46] with one raw element",
            infer(
                ctx,
                image_input(vec![1 << 46]),
                vec![raw_bytes(&[&ctx.image])],
            ),
        ),
        one(
            Rpc::ModelInfer,
            "shape [2^46, 1] with one raw element",
            infer(
                ctx,
                image_input(vec![1 << 46, 1]),
                vec![raw_bytes(&[&ctx.image])],
            ),
        ),
        one(
            Rpc::ModelInfer,
            "shape [i64::MAX]",
            infer(
                ctx,
                image_input(vec![i64::MAX]),
                vec![raw_bytes(&[&ctx.image])],
            ),
        ),
        one(
            Rpc::ModelInfer,
            "shape [i64::MIN]",
            infer(
                ctx,
                image_input(vec![i64::MIN]),
                vec![raw_bytes(&[&ctx.image])],
            ),
        ),
        one(
            Rpc::ModelInfer,
            "shape [-1]",
            infer(ctx, image_input(vec![-1]), vec![raw_bytes(&[&ctx.image])]),
        ),
        one(
            Rpc::ModelInfer,
            "shape [0]",
            infer(ctx, image_input(vec![0]), vec![Vec::new()]),
        ),
        one(
            Rpc::ModelInfer,
            "shape of 1,000,000 dimensions",
            infer(
                ctx,
                image_input(vec![1; 1_000_000]),
                vec![raw_bytes(&[&ctx.image])],
            ),
        ),
        one(
            Rpc::ModelInfer,
            "shape [1000] over max_batch_size of empty elements",
            infer(ctx, image_input(vec![1000]), vec![vec![0; 4000]]),
        ),
        one(
            Rpc::ModelInfer,
            "raw length prefix past the end",
            infer(
                ctx,
                image_input(vec![1]),
                vec![vec![0xff, 0xff, 0xff, 0x7f, 1, 2]],
            ),
        ),
        one(
            Rpc::ModelInfer,
            "raw holds more elements than the shape",
            infer(
                ctx,
                image_input(vec![1]),
                vec![raw_bytes(&[&ctx.image, &ctx.image])],
            ),
        ),
        one(
            Rpc::ModelInfer,
            "raw torn inside a length",
            infer(
                ctx,
                image_input(vec![2]),
                vec![[raw_bytes(&[b"abcd"]), vec![1, 0]].concat()],
            ),
        ),
        one(
            Rpc::ModelInfer,
            "both raw and contents",
            ModelInferRequest {
                inputs: vec![InferInputTensor {
                    contents: Some(InferTensorContents {
                        bytes_contents: vec![ctx.image.clone().into()],
                        ..Default::default()
                    }),
                    ..image_input(vec![1])
                }],
                ..infer(ctx, image_input(vec![1]), vec![raw_bytes(&[&ctx.image])])
            },
        ),
        one(
            Rpc::ModelInfer,
            "contents count not the shape's",
            ModelInferRequest {
                inputs: vec![InferInputTensor {
                    contents: Some(InferTensorContents {
                        bytes_contents: vec![ctx.image.clone().into(); 3],
                        ..Default::default()
                    }),
                    ..image_input(vec![2])
                }],
                ..infer(ctx, image_input(vec![1]), vec![])
            },
        ),
        one(
            Rpc::ModelInfer,
            "FP32 contents for a BYTES input",
            ModelInferRequest {
                inputs: vec![InferInputTensor {
                    datatype: "FP32".into(),
                    contents: Some(InferTensorContents {
                        fp32_contents: vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY],
                        ..Default::default()
                    }),
                    ..image_input(vec![3])
                }],
                ..infer(ctx, image_input(vec![1]), vec![])
            },
        ),
        one(
            Rpc::ModelInfer,
            "datatype of 1 MB",
            ModelInferRequest {
                inputs: vec![InferInputTensor {
                    datatype: huge.clone(),
                    ..image_input(vec![1])
                }],
                ..infer(ctx, image_input(vec![1]), vec![raw_bytes(&[&ctx.image])])
            },
        ),
        one(
            Rpc::ModelInfer,
            "input name of 1 MB",
            ModelInferRequest {
                inputs: vec![InferInputTensor {
                    name: huge.clone(),
                    ..image_input(vec![1])
                }],
                ..infer(ctx, image_input(vec![1]), vec![raw_bytes(&[&ctx.image])])
            },
        ),
        one(
            Rpc::ModelInfer,
            "two raw_input_contents for one input",
            infer(ctx, image_input(vec![1]), vec![raw_bytes(&[&ctx.image]); 2]),
        ),
        one(
            Rpc::ModelInfer,
            "no inputs",
            ModelInferRequest {
                model_name: model(),
                ..Default::default()
            },
        ),
        one(
            Rpc::ModelInfer,
            "two inputs",
            ModelInferRequest {
                inputs: vec![image_input(vec![1]), image_input(vec![1])],
                ..infer(ctx, image_input(vec![1]), vec![raw_bytes(&[&ctx.image])])
            },
        ),
        one(
            Rpc::ModelInfer,
            "100,000 outputs",
            ModelInferRequest {
                outputs: vec![
                    InferRequestedOutputTensor {
                        name: "PROBABILITIES".into(),
                        ..Default::default()
                    };
                    100_000
                ],
                ..infer(ctx, image_input(vec![1]), vec![raw_bytes(&[&ctx.image])])
            },
        ),
        one(
            Rpc::ModelInfer,
            "id of 1 MB",
            ModelInferRequest {
                id: huge.clone(),
                ..infer(ctx, image_input(vec![1]), vec![raw_bytes(&[&ctx.image])])
            },
        ),
        one(
            Rpc::ModelInfer,
            "parameters of 100,000 entries",
            ModelInferRequest {
                parameters: (0..100_000)
                    .map(|i| (i.to_string(), InferParameter::default()))
                    .collect(),
                ..infer(ctx, image_input(vec![1]), vec![raw_bytes(&[&ctx.image])])
            },
        ),
        one(
            Rpc::ModelInfer,
            "an image that is no image",
            infer(ctx, image_input(vec![1]), vec![raw_bytes(&[&[0xff; 64]])]),
        ),
        case(
            Rpc::ModelInfer,
            "model_name not UTF-8",
            vec![Raw::default().bytes(1, not_utf8).done()],
        ),
        case(
            Rpc::ModelInfer,
            "raw_input_contents with a length prefix past the end",
            vec![Raw::default()
                .bytes(1, ctx.model.as_bytes())
                .past_end(7, 1 << 40, b"abc")
                .done()],
        ),
        // The metadata RPCs: names and versions.
        one(
            Rpc::ModelReady,
            "name of 1 MB",
            ModelReadyRequest {
                name: huge.clone(),
                version: String::new(),
            },
        ),
        one(
            Rpc::ModelReady,
            "version of 1 MB",
            ModelReadyRequest {
                name: model(),
                version: huge.clone(),
            },
        ),
        one(
            Rpc::ModelMetadata,
            "name of control characters",
            ModelMetadataRequest {
                name: controls.clone(),
                version: String::new(),
            },
        ),
        one(
            Rpc::ModelMetadata,
            "version 2",
            ModelMetadataRequest {
                name: model(),
                version: "2".into(),
            },
        ),
        one(
            Rpc::ModelConfig,
            "name of 1 MB",
            ModelConfigRequest {
                name: huge.clone(),
                version: huge.clone(),
            },
        ),
        one(
            Rpc::RepositoryIndex,
            "repository_name of 1 MB",
            RepositoryIndexRequest {
                repository_name: huge.clone(),
                ready: true,
            },
        ),
    ]
}
