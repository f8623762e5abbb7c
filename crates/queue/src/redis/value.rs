//! Reading Redis replies into the queue's types. Replies are taken as
//! `redis::Value` and picked apart here, so that a damaged or foreign entry
//! becomes `QueueError::Corrupt` naming what was wrong, not a panic.

use std::collections::{BTreeMap, HashMap};

use dfscan_proto::v1 as pb;
use prost::Message;
use redis::Value;

use crate::types::{JobRecord, JobSpec, JobState, Priority};
use crate::{QueueError, Result};

pub(super) fn corrupt(what: impl std::fmt::Display) -> QueueError {
    QueueError::Corrupt(what.to_string())
}

/// The bytes of a string reply.
pub(super) fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.clone().into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

pub(super) fn string(v: &Value) -> Option<String> {
    bytes(v).and_then(|b| String::from_utf8(b).ok())
}

pub(super) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => string(other)?.parse().ok(),
    }
}

/// The elements of an array reply (RESP3 sets too); nil is empty.
pub(super) fn array(v: &Value) -> Result<&[Value]> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(&[]),
        other => Err(corrupt(format!("expected an array, got {other:?}"))),
    }
}

/// Field → value of a flat `[field, value, ...]` reply or a RESP3 map.
pub(super) fn fields(v: &Value) -> Result<HashMap<String, Vec<u8>>> {
    let pairs: Vec<(&Value, &Value)> = match v {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        other => {
            let items = array(other)?;
            items
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| (&c[0], &c[1]))
                .collect()
        }
    };
    pairs
        .into_iter()
        .map(|(k, v)| {
            // Field names are ours, so one that is not text is someone
            // else's: kept (lossily) rather than failing the whole reply,
            // and left for the reader to find missing what it needs.
            let key = bytes(k)
                .map(|k| String::from_utf8_lossy(&k).into_owned())
                .ok_or_else(|| corrupt("a field name is not a string"))?;
            let value = bytes(v).ok_or_else(|| corrupt(format!("field {key} is not a string")))?;
            Ok((key, value))
        })
        .collect()
}

/// A stream entry.
pub(super) struct Entry {
    pub id: String,
    pub fields: HashMap<String, Vec<u8>>,
}

impl Entry {
    pub fn text(&self, field: &str) -> Option<String> {
        self.fields
            .get(field)
            .and_then(|b| String::from_utf8(b.clone()).ok())
    }

    pub fn number(&self, field: &str) -> Option<u64> {
        self.text(field)?.parse().ok()
    }
}

/// One `[id, [field, value, ...]]` element of XRANGE / XREAD / XAUTOCLAIM.
pub(super) fn entry(v: &Value) -> Result<Entry> {
    let parts = array(v)?;
    let id = parts
        .first()
        .and_then(string)
        .ok_or_else(|| corrupt("stream entry without an id"))?;
    let fields = match parts.get(1) {
        Some(f) => fields(f)?,
        None => HashMap::new(),
    };
    Ok(Entry { id, fields })
}

/// The entries of an XRANGE / XREVRANGE reply.
pub(super) fn entries(v: &Value) -> Result<Vec<Entry>> {
    array(v)?.iter().map(entry).collect()
}

/// The entries of an XREAD / XREADGROUP reply (one stream or several),
/// with the name of the stream each came from. Nil (timed out) is empty.
pub(super) fn read_reply(v: &Value) -> Result<Vec<(String, Entry)>> {
    let streams: Vec<(&Value, &Value)> = match v {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        other => array(other)?
            .iter()
            .map(|s| {
                let parts = array(s)?;
                match parts {
                    [key, entries] => Ok((key, entries)),
                    _ => Err(corrupt("malformed stream read reply")),
                }
            })
            .collect::<Result<_>>()?,
    };
    let mut out = Vec::new();
    for (key, list) in streams {
        let key = string(key).unwrap_or_default();
        for e in array(list)? {
            out.push((key.clone(), entry(e)?));
        }
    }
    Ok(out)
}

/// The numeric part after the dash of a stream id (`0-<n>` for results).
pub(super) fn id_seq(id: &str) -> Option<u64> {
    id.split_once('-')?.1.parse().ok()
}

/// Prefix of the job hash fields that count scored items per verdict
/// (complete.lua writes them).
pub(super) const VERDICT_FIELD: &str = "verdict:";

/// A job hash as a record; `None` when the hash is empty (no such job).
pub(super) fn job_record(id: &str, hash: &HashMap<String, Vec<u8>>) -> Result<Option<JobRecord>> {
    if hash.is_empty() {
        return Ok(None);
    }
    let bad = |field: &str| corrupt(format!("job {id}: field {field} is missing or malformed"));
    let text = |field: &str| {
        hash.get(field)
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_string)
    };
    let num = |field: &str| -> Result<u64> {
        match text(field) {
            None => Ok(0),
            Some(s) => s.parse().map_err(|_| bad(field)),
        }
    };
    let state = text("state")
        .and_then(|s| JobState::parse(&s))
        .ok_or_else(|| bad("state"))?;
    let metadata = match hash.get("metadata") {
        Some(b) if !b.is_empty() => pb::Job::decode(b.as_slice())
            .map_err(|_| bad("metadata"))?
            .metadata
            .into_iter()
            .collect(),
        _ => BTreeMap::new(),
    };
    let message = |field: &str| hash.get(field).filter(|b| !b.is_empty());
    let policy = message("policy")
        .map(|b| pb::VerdictPolicy::decode(b.as_slice()).map_err(|_| bad("policy")))
        .transpose()?;
    let faces = message("faces")
        .map(|b| pb::FaceOptions::decode(b.as_slice()).map_err(|_| bad("faces")))
        .transpose()?;
    let callback = message("callback")
        .map(|b| pb::Callback::decode(b.as_slice()).map_err(|_| bad("callback")))
        .transpose()?;
    let mut verdicts = BTreeMap::new();
    for field in hash.keys() {
        if let Some(verdict) = field.strip_prefix(VERDICT_FIELD) {
            verdicts.insert(verdict.to_string(), num(field)?);
        }
    }
    let created_ms = text("created_ms")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("created_ms"))?;
    let finished_ms = match text("finished_ms") {
        None => None,
        Some(s) => Some(s.parse().map_err(|_| bad("finished_ms"))?),
    };
    let spec = JobSpec {
        model: text("model").ok_or_else(|| bad("model"))?,
        metadata,
        idempotency_key: text("idem").filter(|k| !k.is_empty()),
        priority: match text("priority") {
            None => Priority::Bulk,
            Some(p) => Priority::parse(&p).ok_or_else(|| bad("priority"))?,
        },
        retention_s: match text("retention_ms") {
            None => None,
            Some(ms) => Some(ms.parse::<u64>().map_err(|_| bad("retention_ms"))? / 1000),
        },
        policy,
        callback,
        faces,
        tenant: text("tenant").unwrap_or_default(),
    };
    Ok(Some(JobRecord {
        id: id.to_string(),
        spec,
        state,
        total: num("total")?,
        completed: num("completed")?,
        failed: num("failed")?,
        created_ms,
        finished_ms,
        verdicts,
        callback_cursor: num("callback_cursor")?,
        callback_done: text("callback_done").is_some(),
        updated_ms: text("updated_ms")
            .and_then(|s| s.parse().ok())
            .unwrap_or(created_ms),
    }))
}

/// How a job's metadata is stored: a `Job` message with only the map set
/// (protobuf, like every other stored value).
pub(super) fn encode_metadata(metadata: &BTreeMap<String, String>) -> Vec<u8> {
    pb::Job {
        metadata: metadata.clone().into_iter().collect(),
        ..Default::default()
    }
    .encode_to_vec()
}
