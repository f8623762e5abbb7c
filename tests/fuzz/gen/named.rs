//! The named cases of `dfscan.v1.Scoring`, field by field, then those
//! every RPC of both services gets (garbage, unknown fields, truncation).

use std::collections::HashMap;

use dfscan_proto::v1::{
    item::Source, Callback, Item, JobHeader, ListJobsRequest, StreamResultsRequest, VerdictPolicy,
    VerdictThreshold,
};

use super::*;

/// The fixed cases, field by field.
pub fn named(ctx: &Context) -> Vec<Case> {
    let huge = "x".repeat(MB);
    let controls = "\0\x01\x07\x08\n\r\t\x1b\x7f".repeat(1000);
    let not_utf8: &[u8] = &[b'a', 0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80];
    let model = || ctx.model.clone();
    let good_header = || JobHeader {
        model: model(),
        ..Default::default()
    };
    let data = || Source::Data(ctx.image.clone().into());
    let mut cases = vec![
        // SubmitJob: the stream out of order.
        case(Rpc::SubmitJob, "empty stream", vec![]),
        case(
            Rpc::SubmitJob,
            "items before the header",
            vec![items(vec![item("a", data())]), header(good_header())],
        ),
        case(
            Rpc::SubmitJob,
            "two headers",
            vec![header(good_header()), header(good_header())],
        ),
        case(
            Rpc::SubmitJob,
            "a message with neither header nor items",
            vec![header(good_header()), Vec::new()],
        ),
        case(
            Rpc::SubmitJob,
            "header only (an empty job)",
            vec![header(good_header())],
        ),
        // SubmitJob: the header's fields.
        case(
            Rpc::SubmitJob,
            "model of 1 MB",
            vec![header(JobHeader {
                model: huge.clone(),
                ..Default::default()
            })],
        ),
        case(
            Rpc::SubmitJob,
            "model not UTF-8",
            vec![wrapped(1, Raw::default().bytes(1, not_utf8).done())],
        ),
        case(
            Rpc::SubmitJob,
            "idempotency_key of 1 MB",
            vec![header(JobHeader {
                idempotency_key: huge.clone(),
                ..good_header()
            })],
        ),
        case(
            Rpc::SubmitJob,
            "idempotency_key of control characters",
            vec![
                header(JobHeader {
                    idempotency_key: "\0\n\r*?[]{}".into(),
                    ..good_header()
                }),
                items(vec![item("a", data())]),
            ],
        ),
        case(
            Rpc::SubmitJob,
            "metadata of 100,000 entries",
            vec![header(JobHeader {
                metadata: big_map(100_000),
                ..good_header()
            })],
        ),
        case(
            Rpc::SubmitJob,
            "metadata key of 1 MB",
            vec![header(JobHeader {
                metadata: HashMap::from([(huge.clone(), String::new())]),
                ..good_header()
            })],
        ),
        case(
            Rpc::SubmitJob,
            "metadata value of control characters",
            vec![header(JobHeader {
                metadata: HashMap::from([("k".into(), controls.clone())]),
                ..good_header()
            })],
        ),
        case(
            Rpc::SubmitJob,
            "task_size u32::MAX",
            vec![
                header(JobHeader {
                    task_size: u32::MAX,
                    ..good_header()
                }),
                items(vec![item("a", data())]),
            ],
        ),
        case(
            Rpc::SubmitJob,
            "policy threshold NaN",
            vec![header(JobHeader {
                policy: Some(policy(f32::NAN)),
                ..good_header()
            })],
        ),
        case(
            Rpc::SubmitJob,
            "policy threshold +inf",
            vec![header(JobHeader {
                policy: Some(policy(f32::INFINITY)),
                ..good_header()
            })],
        ),
        case(
            Rpc::SubmitJob,
            "policy threshold -inf",
            vec![header(JobHeader {
                policy: Some(policy(f32::NEG_INFINITY)),
                ..good_header()
            })],
        ),
        case(
            Rpc::SubmitJob,
            "policy of 100,000 thresholds",
            vec![header(JobHeader {
                policy: Some(VerdictPolicy {
                    thresholds: (0..100_000)
                        .map(|i| VerdictThreshold {
                            verdict: format!("v{i}"),
                            min_fake_score: i as f32 / 100_000.0,
                        })
                        .collect(),
                    otherwise: String::new(),
                }),
                ..good_header()
            })],
        ),
        case(
            Rpc::SubmitJob,
            "policy verdict of 1 MB",
            vec![header(JobHeader {
                policy: Some(VerdictPolicy {
                    thresholds: vec![VerdictThreshold {
                        verdict: huge.clone(),
                        min_fake_score: 0.5,
                    }],
                    otherwise: huge.clone(),
                }),
                ..good_header()
            })],
        ),
        case(
            Rpc::SubmitJob,
            "callback URL of 1 MB",
            vec![header(JobHeader {
                callback: Some(Callback {
                    url: format!("https://{huge}"),
                    item_verdicts: vec![],
                }),
                ..good_header()
            })],
        ),
        case(
            Rpc::SubmitJob,
            "callback to a host not allowed",
            vec![header(JobHeader {
                callback: Some(Callback {
                    url: "http://169.254.169.254/latest/meta-data".into(),
                    item_verdicts: vec![],
                }),
                ..good_header()
            })],
        ),
        case(
            Rpc::SubmitJob,
            "callback item_verdicts of 100,000 entries of 1 MB in all",
            vec![header(JobHeader {
                policy: Some(policy(0.5)),
                callback: Some(Callback {
                    url: "http://127.0.0.1:1/".into(),
                    item_verdicts: (0..100_000).map(|i| format!("{i:09}")).collect(),
                }),
                ..good_header()
            })],
        ),
        // SubmitJob: the items' fields.
        case(
            Rpc::SubmitJob,
            "item id of 1 MB",
            vec![header(good_header()), items(vec![item(&huge, data())])],
        ),
        case(
            Rpc::SubmitJob,
            "item id not UTF-8",
            vec![
                header(good_header()),
                wrapped(
                    2,
                    Raw::default()
                        .bytes(1, &Raw::default().bytes(1, not_utf8).bytes(2, b"x").done())
                        .done(),
                ),
            ],
        ),
        case(
            Rpc::SubmitJob,
            "item uri of control characters",
            vec![
                header(good_header()),
                items(vec![item("a", Source::Uri(format!("/tmp/{controls}")))]),
            ],
        ),
        case(
            Rpc::SubmitJob,
            "item uri escaping the roots",
            vec![
                header(good_header()),
                items(vec![item(
                    "a",
                    Source::Uri("file:///../../../etc/shadow".into()),
                )]),
            ],
        ),
        case(
            Rpc::SubmitJob,
            "item without an image",
            vec![
                header(good_header()),
                items(vec![Item {
                    id: "a".into(),
                    ..Default::default()
                }]),
            ],
        ),
        case(
            Rpc::SubmitJob,
            "item data that is no image",
            vec![
                header(good_header()),
                items(vec![item("a", Source::Data(vec![0xff; 4096].into()))]),
            ],
        ),
        case(
            Rpc::SubmitJob,
            "item metadata of 100,000 entries",
            vec![
                header(good_header()),
                items(vec![Item {
                    metadata: big_map(100_000),
                    ..item("a", data())
                }]),
            ],
        ),
        case(
            Rpc::SubmitJob,
            "100,000 empty items",
            vec![header(good_header()), items(vec![Item::default(); 100_000])],
        ),
        case(
            Rpc::SubmitJob,
            "header with a length prefix past the end",
            vec![Raw::default().past_end(1, 1 << 30, b"\x0a\x01a").done()],
        ),
        case(
            Rpc::SubmitJob,
            "items with a length prefix past the end",
            vec![
                header(good_header()),
                Raw::default().past_end(2, u64::MAX >> 1, b"\x0a").done(),
            ],
        ),
        case(
            Rpc::SubmitJob,
            "header field of the wrong wire type",
            vec![Raw::default().uint(1, 7).done()],
        ),
        // GetJob, CancelJob, StreamResults: ids and cursors.
        one(
            Rpc::StreamResults,
            "after_cursor u64::MAX",
            StreamResultsRequest {
                job_id: ctx.job_id.clone(),
                after_cursor: u64::MAX,
            },
        ),
        one(
            Rpc::StreamResults,
            "after_cursor one past the last",
            StreamResultsRequest {
                job_id: ctx.job_id.clone(),
                after_cursor: ctx.job_total + 1,
            },
        ),
        one(
            Rpc::StreamResults,
            "after_cursor at the last",
            StreamResultsRequest {
                job_id: ctx.job_id.clone(),
                after_cursor: ctx.job_total,
            },
        ),
        one(
            Rpc::ListJobs,
            "limit u32::MAX",
            ListJobsRequest {
                limit: u32::MAX,
                state: 0,
            },
        ),
        one(
            Rpc::ListJobs,
            "state 999",
            ListJobsRequest {
                limit: 1,
                state: 999,
            },
        ),
        one(
            Rpc::ListJobs,
            "state -1",
            ListJobsRequest {
                limit: 1,
                state: -1,
            },
        ),
        one(
            Rpc::ListJobs,
            "state i32::MIN",
            ListJobsRequest {
                limit: 0,
                state: i32::MIN,
            },
        ),
        case(
            Rpc::ListJobs,
            "limit varint of 11 bytes",
            vec![[&[0x08][..], &[0xff; 10], &[0x01]].concat()],
        ),
    ];
    cases.extend(super::kserve::named(ctx));
    // The id fields, each pushed the same ways.
    let job_ids: [(&str, Vec<u8>); 6] = [
        ("job_id of 1 MB", huge.clone().into_bytes()),
        ("job_id not UTF-8", not_utf8.to_vec()),
        (
            "job_id of control characters",
            controls.clone().into_bytes(),
        ),
        (
            "job_id in upper case",
            ctx.job_id.to_uppercase().into_bytes(),
        ),
        (
            "job_id of no job",
            b"0123456789abcdef0123456789abcdef".to_vec(),
        ),
        (
            "job_id as a path",
            b"../../../../../../../../etc/pass".to_vec(),
        ),
    ];
    for rpc in [Rpc::GetJob, Rpc::CancelJob, Rpc::StreamResults] {
        for (name, id) in &job_ids {
            cases.push(case(rpc, name, vec![Raw::default().bytes(1, id).done()]));
        }
        cases.push(case(
            rpc,
            "job_id with a length prefix past the end",
            vec![Raw::default().past_end(1, 32, b"0123").done()],
        ));
    }
    // Requests without fields still get garbage and unknown fields.
    for rpc in Rpc::ALL {
        cases.push(case(rpc, "garbage bytes", vec![vec![0xff; 64]]));
        cases.push(case(
            rpc,
            "an unknown field of 1 MB",
            vec![Raw::default().bytes(999, huge.as_bytes()).done()],
        ));
        cases.push(case(
            rpc,
            "a truncated varint",
            vec![vec![0x08, 0xff, 0xff]],
        ));
    }
    cases
}
