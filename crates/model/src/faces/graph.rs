//! The face detector's network: the ONNX graph that setup converted
//! (`scripts/convert_face_detector.py`: `graph.json` + `model.safetensors`),
//! interpreted over tch ops, so that the detector runs on the classifier's
//! device with no ONNX runtime linked.
//!
//! Only the operators CenterFace uses are implemented: Conv and
//! ConvTranspose (groups, symmetric pads, strides, dilations,
//! output_padding), BatchNormalization in inference mode, Relu, Sigmoid and
//! Add. Anything else, and any attribute the interpreter would ignore, is
//! refused when the detector loads, naming the node.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use serde::Deserialize;
use serde_json::{Map, Value};
use tch::{Device, Kind, Tensor};

use super::input::SIZE_MULTIPLE;
use crate::error::ModelError;

/// The `graph.json` layout this interpreter reads (the converter's
/// `CONVERTER_VERSION`).
const CONVERTER_VERSION: u32 = 1;

/// `graph.json`, as the converter writes it.
#[derive(Deserialize)]
pub(crate) struct Description {
    format: String,
    converter_version: u32,
    /// Names the detector in results (with the weights' sha256).
    pub name: String,
    input: InputConventions,
    outputs: Heads<String>,
    /// Input pixels per output cell.
    pub output_stride: u32,
    nodes: Vec<NodeDescription>,
}

/// How the network expects its input; checked, since preprocessing is
/// written for exactly these.
#[derive(Deserialize)]
struct InputConventions {
    name: String,
    layout: String,
    channels: String,
    values: String,
    /// Height and width must be multiples of it.
    size_multiple: u32,
}

/// CenterFace's four output maps.
#[derive(Deserialize, Clone, Copy)]
pub(crate) struct Heads<T> {
    pub heatmap: T,
    pub scale: T,
    pub offset: T,
    pub landmarks: T,
}

#[derive(Deserialize)]
struct NodeDescription {
    op: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attributes: Map<String, Value>,
}

/// Conv and ConvTranspose attributes (ONNX defaults where absent).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConvAttributes {
    kernel_shape: Option<Vec<i64>>,
    strides: Option<Vec<i64>>,
    pads: Option<Vec<i64>>,
    dilations: Option<Vec<i64>>,
    #[serde(default = "one")]
    group: i64,
    auto_pad: Option<String>,
    output_padding: Option<Vec<i64>>,
}

fn one() -> i64 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchNormAttributes {
    #[serde(default = "default_epsilon")]
    epsilon: f64,
    /// Training only.
    #[serde(rename = "momentum")]
    _momentum: Option<f64>,
}

fn default_epsilon() -> f64 {
    1e-5
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoAttributes {}

/// Where an operand's value comes from.
enum Operand {
    /// An activation: the graph input or an earlier node's output.
    Value(usize),
    /// A weight.
    Constant(Tensor),
}

/// 2-D convolution geometry, in tch's argument order.
struct ConvGeometry {
    stride: [i64; 2],
    padding: [i64; 2],
    dilation: [i64; 2],
    groups: i64,
}

enum Op {
    Conv {
        weight: Tensor,
        bias: Option<Tensor>,
        geometry: ConvGeometry,
    },
    ConvTranspose {
        weight: Tensor,
        bias: Option<Tensor>,
        geometry: ConvGeometry,
        output_padding: [i64; 2],
    },
    BatchNorm {
        weight: Tensor,
        bias: Tensor,
        mean: Tensor,
        var: Tensor,
        epsilon: f64,
    },
    Relu,
    Sigmoid,
    Add,
}

struct Step {
    op: Op,
    /// The activations the op reads (for Conv, ConvTranspose and BatchNorm,
    /// just its data input; their weights live in `op`).
    inputs: Vec<Operand>,
    output: usize,
    /// Activations read for the last time here: dropped after the step, and
    /// an op may overwrite its own input in place when it is one of them.
    last_uses: Vec<usize>,
}

/// The loaded network.
pub(crate) struct Network {
    steps: Vec<Step>,
    values: usize,
    heads: Heads<usize>,
}

impl Network {
    /// Builds the network that `description` describes from `weights` (the
    /// bytes of `model.safetensors`), on `device` in `kind`.
    pub fn new(
        description: &Description,
        weights: &[u8],
        dir: &Path,
        device: Device,
        kind: Kind,
    ) -> Result<Self, ModelError> {
        let invalid = invalid_in(dir);
        if description.format != "dfscan-face-detector" {
            return Err(invalid(format!(
                "graph.json has format {:?}, not \"dfscan-face-detector\"",
                description.format
            )));
        }
        if description.converter_version != CONVERTER_VERSION {
            return Err(invalid(format!(
                "graph.json is from converter version {}, this dfscan reads version {CONVERTER_VERSION}: \
                 convert the detector again (scripts/setup.sh)",
                description.converter_version
            )));
        }
        let input = &description.input;
        let conventions = (
            input.layout.as_str(),
            input.channels.as_str(),
            input.values.as_str(),
            input.size_multiple,
        );
        if conventions != ("NCHW", "RGB", "0-255, unnormalised", SIZE_MULTIPLE) {
            return Err(invalid(format!(
                "the input must be NCHW RGB 0-255 unnormalised in multiples of {SIZE_MULTIPLE}, \
                 graph.json says {conventions:?}"
            )));
        }
        if description.output_stride == 0
            || !SIZE_MULTIPLE.is_multiple_of(description.output_stride)
        {
            return Err(invalid(format!(
                "output_stride {} does not divide the input multiple {SIZE_MULTIPLE}",
                description.output_stride
            )));
        }
        let st = SafeTensors::deserialize(weights)
            .map_err(|e| invalid(format!("model.safetensors: {e}")))?;
        let constant = |name: &str| -> Result<Tensor, ModelError> {
            let view = st.tensor(name).map_err(|_| {
                invalid(format!(
                    "`{name}` is neither an earlier node's output nor a tensor in model.safetensors"
                ))
            })?;
            let tensor =
                Tensor::try_from(view).map_err(|e| invalid(format!("tensor `{name}`: {e}")))?;
            Ok(tensor.f_to_device(device)?.f_to_kind(kind)?)
        };

        let mut slots: HashMap<&str, usize> = HashMap::from([(input.name.as_str(), 0)]);
        let mut steps = Vec::with_capacity(description.nodes.len());
        for (index, node) in description.nodes.iter().enumerate() {
            let node_error = |reason: String| {
                invalid(format!(
                    "node {index} ({} -> {:?}): {reason}",
                    node.op, node.outputs
                ))
            };
            let [output] = node.outputs.as_slice() else {
                return Err(node_error("exactly one output is supported".into()));
            };
            let value = |name: &str| -> Result<Operand, ModelError> {
                match slots.get(name) {
                    Some(&slot) => Ok(Operand::Value(slot)),
                    None => constant(name).map(Operand::Constant),
                }
            };
            let attributes = Value::Object(node.attributes.clone());
            let (op, inputs) = match node.op.as_str() {
                "Conv" | "ConvTranspose" => {
                    let attrs: ConvAttributes = serde_json::from_value(attributes)
                        .map_err(|e| node_error(format!("attributes: {e}")))?;
                    let (data, weight, bias) = match node.inputs.as_slice() {
                        [x, w] => (x, w, None),
                        [x, w, b] => (x, w, Some(b)),
                        _ => {
                            return Err(node_error(
                                "takes an input, a weight and an optional bias".into(),
                            ))
                        }
                    };
                    let weight = constant(weight)?;
                    let bias = bias.map(|b| constant(b)).transpose()?;
                    let transposed = node.op == "ConvTranspose";
                    let (geometry, output_padding) =
                        conv_geometry(&attrs, &weight, bias.as_ref(), transposed)
                            .map_err(node_error)?;
                    let op = if transposed {
                        Op::ConvTranspose {
                            weight,
                            bias,
                            geometry,
                            output_padding,
                        }
                    } else {
                        Op::Conv {
                            weight,
                            bias,
                            geometry,
                        }
                    };
                    (op, vec![value(data)?])
                }
                "BatchNormalization" => {
                    let attrs: BatchNormAttributes = serde_json::from_value(attributes)
                        .map_err(|e| node_error(format!("attributes: {e}")))?;
                    let [x, scale, bias, mean, var] = node.inputs.as_slice() else {
                        return Err(node_error(
                            "takes an input, scale, bias, mean and variance".into(),
                        ));
                    };
                    let [weight, bias, mean, var] =
                        [scale, bias, mean, var].map(|name| constant(name));
                    let (weight, bias, mean, var) = (weight?, bias?, mean?, var?);
                    let channels = weight.size();
                    if channels.len() != 1
                        || [&bias, &mean, &var].iter().any(|t| t.size() != channels)
                    {
                        return Err(node_error(
                            "scale, bias, mean and variance must be vectors of one length".into(),
                        ));
                    }
                    if !(attrs.epsilon.is_finite() && attrs.epsilon >= 0.0) {
                        return Err(node_error(format!("epsilon {}", attrs.epsilon)));
                    }
                    let op = Op::BatchNorm {
                        weight,
                        bias,
                        mean,
                        var,
                        epsilon: attrs.epsilon,
                    };
                    (op, vec![value(x)?])
                }
                op @ ("Relu" | "Sigmoid" | "Add") => {
                    let _: NoAttributes = serde_json::from_value(attributes)
                        .map_err(|e| node_error(format!("attributes: {e}")))?;
                    let arity = if op == "Add" { 2 } else { 1 };
                    if node.inputs.len() != arity {
                        return Err(node_error(format!("takes {arity} input(s)")));
                    }
                    let inputs = node
                        .inputs
                        .iter()
                        .map(|name| value(name))
                        .collect::<Result<Vec<_>, _>>()?;
                    let op = match op {
                        "Relu" => Op::Relu,
                        "Sigmoid" => Op::Sigmoid,
                        _ => Op::Add,
                    };
                    (op, inputs)
                }
                other => {
                    return Err(node_error(format!(
                        "operator {other} is not supported (supported: Conv, ConvTranspose, \
                         BatchNormalization, Relu, Sigmoid, Add)"
                    )))
                }
            };
            if !inputs.iter().any(|i| matches!(i, Operand::Value(_))) {
                return Err(node_error("reads no activation".into()));
            }
            if slots.contains_key(output.as_str()) {
                return Err(node_error(format!("redefines `{output}`")));
            }
            let slot = slots.len();
            slots.insert(output, slot);
            steps.push(Step {
                op,
                inputs,
                output: slot,
                last_uses: Vec::new(),
            });
        }

        let head = |name: &String| {
            slots
                .get(name.as_str())
                .copied()
                .filter(|&slot| slot != 0)
                .ok_or_else(|| invalid(format!("output `{name}` is not produced by any node")))
        };
        let outputs = &description.outputs;
        let heads = Heads {
            heatmap: head(&outputs.heatmap)?,
            scale: head(&outputs.scale)?,
            offset: head(&outputs.offset)?,
            landmarks: head(&outputs.landmarks)?,
        };
        let mut distinct = [heads.heatmap, heads.scale, heads.offset, heads.landmarks];
        distinct.sort_unstable();
        if distinct.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("two heads name the same output".into()));
        }
        mark_last_uses(&mut steps, &heads);
        Ok(Self {
            steps,
            values: slots.len(),
            heads,
        })
    }

    /// Runs the network on a float NCHW batch on its device; returns the
    /// four heads.
    pub fn forward(&self, input: Tensor) -> Result<Heads<Tensor>, ModelError> {
        let _no_grad = tch::no_grad_guard();
        let mut values: Vec<Option<Tensor>> = Vec::with_capacity(self.values);
        values.resize_with(self.values, || None);
        values[0] = Some(input);
        for step in &self.steps {
            let out = step.run(&values)?;
            for &slot in &step.last_uses {
                values[slot] = None;
            }
            values[step.output] = Some(out);
        }
        let mut take = |slot: usize| {
            values[slot]
                .take()
                .ok_or_else(|| ModelError::Torch("the detector produced no output".into()))
        };
        Ok(Heads {
            heatmap: take(self.heads.heatmap)?,
            scale: take(self.heads.scale)?,
            offset: take(self.heads.offset)?,
            landmarks: take(self.heads.landmarks)?,
        })
    }
}

impl Step {
    fn run(&self, values: &[Option<Tensor>]) -> Result<Tensor, ModelError> {
        let read = |operand: &Operand| -> Result<Tensor, ModelError> {
            match operand {
                Operand::Value(slot) => values[*slot]
                    .as_ref()
                    .map(Tensor::shallow_clone)
                    .ok_or_else(|| {
                        ModelError::Torch(format!("value {slot} read after it was dropped"))
                    }),
                Operand::Constant(t) => Ok(t.shallow_clone()),
            }
        };
        // An activation read for the last time here may be overwritten.
        let owned = |operand: &Operand| matches!(operand, Operand::Value(slot) if self.last_uses.contains(slot));
        let first = read(&self.inputs[0])?;
        Ok(match &self.op {
            Op::Conv {
                weight,
                bias,
                geometry: g,
            } => first.f_conv2d(
                weight,
                bias.as_ref(),
                g.stride,
                g.padding,
                g.dilation,
                g.groups,
            )?,
            Op::ConvTranspose {
                weight,
                bias,
                geometry: g,
                output_padding,
            } => first.f_conv_transpose2d(
                weight,
                bias.as_ref(),
                g.stride,
                g.padding,
                output_padding,
                g.groups,
                g.dilation,
            )?,
            Op::BatchNorm {
                weight,
                bias,
                mean,
                var,
                epsilon,
            } => first.f_batch_norm(
                Some(weight),
                Some(bias),
                Some(mean),
                Some(var),
                false,
                0.0,
                *epsilon,
                true,
            )?,
            Op::Relu if owned(&self.inputs[0]) => first.shallow_clone().f_relu_()?,
            Op::Relu => first.f_relu()?,
            Op::Sigmoid if owned(&self.inputs[0]) => first.shallow_clone().f_sigmoid_()?,
            Op::Sigmoid => first.f_sigmoid()?,
            Op::Add => {
                let second = read(&self.inputs[1])?;
                // In place only where no broadcasting changes the shape.
                if owned(&self.inputs[0]) && first.size() == second.size() {
                    first.shallow_clone().f_add_(&second)?
                } else {
                    first.f_add(&second)?
                }
            }
        })
    }
}

/// Records, for each step, the activations it reads for the last time (never
/// a head, which [`Network::forward`] returns).
fn mark_last_uses(steps: &mut [Step], heads: &Heads<usize>) {
    let kept = [heads.heatmap, heads.scale, heads.offset, heads.landmarks];
    let mut last: HashMap<usize, usize> = HashMap::new();
    for (index, step) in steps.iter().enumerate() {
        for input in &step.inputs {
            if let Operand::Value(slot) = input {
                last.insert(*slot, index);
            }
        }
    }
    for (slot, index) in last {
        if !kept.contains(&slot) && !steps[index].last_uses.contains(&slot) {
            steps[index].last_uses.push(slot);
        }
    }
}

/// Checks a Conv or ConvTranspose's attributes against its weights and
/// returns tch's arguments (and ConvTranspose's output padding).
fn conv_geometry(
    attrs: &ConvAttributes,
    weight: &Tensor,
    bias: Option<&Tensor>,
    transposed: bool,
) -> Result<(ConvGeometry, [i64; 2]), String> {
    let shape = weight.size();
    let [first, second, kh, kw] = shape[..] else {
        return Err(format!("weight must be 4-D, it is {shape:?}"));
    };
    if attrs.auto_pad.as_deref().is_some_and(|p| p != "NOTSET") {
        return Err(format!("auto_pad {:?} is not supported", attrs.auto_pad));
    }
    if let Some(kernel) = &attrs.kernel_shape {
        if kernel[..] != [kh, kw] {
            return Err(format!(
                "kernel_shape {kernel:?} but the weight is {shape:?}"
            ));
        }
    }
    let pair =
        |name: &str, v: &Option<Vec<i64>>, default: i64, min: i64| -> Result<[i64; 2], String> {
            match v.as_deref() {
                None => Ok([default; 2]),
                Some(&[a, b]) if a >= min && b >= min => Ok([a, b]),
                Some(other) => Err(format!(
                    "{name} {other:?}: two values of at least {min} are supported"
                )),
            }
        };
    let stride = pair("strides", &attrs.strides, 1, 1)?;
    let dilation = pair("dilations", &attrs.dilations, 1, 1)?;
    let padding = match attrs.pads.as_deref() {
        None => [0, 0],
        Some(&[top, left, bottom, right])
            if top == bottom && left == right && top >= 0 && left >= 0 =>
        {
            [top, left]
        }
        Some(other) => {
            return Err(format!(
                "pads {other:?}: only symmetric, non-negative pads are supported"
            ))
        }
    };
    let groups = attrs.group;
    // Conv weights are [out, in / group, kh, kw], ConvTranspose weights
    // [in, out / group, kh, kw]: the group divides the first dimension.
    if groups < 1 || first % groups != 0 {
        return Err(format!(
            "group {groups} does not divide the weight's {first} channels"
        ));
    }
    let output_channels = if transposed { second * groups } else { first };
    if let Some(b) = bias {
        if b.size() != [output_channels] {
            return Err(format!(
                "bias has shape {:?}, the weight makes {output_channels} channels",
                b.size()
            ));
        }
    }
    let output_padding = if transposed {
        let op = pair("output_padding", &attrs.output_padding, 0, 0)?;
        // PyTorch's rule: output padding smaller than stride or dilation.
        if (0..2).any(|i| op[i] >= stride[i].max(dilation[i])) {
            return Err(format!(
                "output_padding {op:?} must be smaller than the stride or dilation"
            ));
        }
        op
    } else if attrs.output_padding.is_some() {
        return Err("output_padding is an attribute of ConvTranspose only".into());
    } else {
        [0, 0]
    };
    Ok((
        ConvGeometry {
            stride,
            padding,
            dilation,
            groups,
        },
        output_padding,
    ))
}

fn invalid_in(dir: &Path) -> impl Fn(String) -> ModelError {
    let path: PathBuf = dir.to_path_buf();
    move |reason| ModelError::InvalidDetector {
        path: path.clone(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use safetensors::tensor::{serialize, TensorView};
    use serde_json::json;

    use super::*;

    /// Weights of the test network, by name.
    fn weights() -> Vec<(&'static str, Tensor)> {
        tch::manual_seed(7);
        let randn = |shape: &[i64]| Tensor::randn(shape, (Kind::Float, Device::Cpu));
        vec![
            ("w1", randn(&[4, 2, 3, 3])),
            ("b1", randn(&[4])),
            ("w2", randn(&[4, 2, 2, 2])),
            ("b2", randn(&[2])),
            ("bn_scale", randn(&[2])),
            ("bn_bias", randn(&[2])),
            ("bn_mean", randn(&[2])),
            ("bn_var", randn(&[2]).abs() + 0.5),
            ("w3", randn(&[2, 4, 1, 1])),
            ("wh", randn(&[1, 2, 1, 1])),
            ("bh", randn(&[1])),
            ("ws", randn(&[2, 2, 1, 1])),
            ("wo", randn(&[2, 2, 3, 3])),
            ("wl", randn(&[4, 5, 2, 2])),
        ]
    }

    fn safetensors_bytes(weights: &[(&str, Tensor)]) -> Vec<u8> {
        let data: Vec<(String, Vec<u8>, Vec<usize>)> = weights
            .iter()
            .map(|(name, t)| {
                let values = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                let shape = t.size().iter().map(|&d| d as usize).collect();
                (name.to_string(), bytes, shape)
            })
            .collect();
        let views: Vec<(String, TensorView)> = data
            .iter()
            .map(|(name, bytes, shape)| {
                let view = TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).unwrap();
                (name.clone(), view)
            })
            .collect();
        serialize(views, &None).unwrap()
    }

    fn node(op: &str, inputs: &[&str], output: &str, attributes: Value) -> Value {
        json!({"op": op, "inputs": inputs, "outputs": [output], "attributes": attributes})
    }

    /// Every supported operator and attribute, in a graph shaped like
    /// CenterFace's: a grouped strided conv, a transposed conv, batch norm,
    /// a residual add, and four heads (one through a sigmoid, one a
    /// transposed conv with output padding).
    fn description() -> Value {
        json!({
            "format": "dfscan-face-detector",
            "converter_version": 1,
            "name": "test",
            "input": {"name": "x", "layout": "NCHW", "channels": "RGB",
                      "values": "0-255, unnormalised", "size_multiple": 32},
            "outputs": {"heatmap": "heat", "scale": "scale", "offset": "offset", "landmarks": "lm"},
            "output_stride": 4,
            "nodes": [
                node("Conv", &["x", "w1", "b1"], "c1", json!({"group": 2, "pads": [1, 1, 1, 1],
                    "strides": [2, 2], "kernel_shape": [3, 3], "dilations": [1, 1]})),
                node("Relu", &["c1"], "r1", json!({})),
                node("ConvTranspose", &["r1", "w2", "b2"], "t1", json!({"strides": [2, 2],
                    "pads": [0, 0, 0, 0], "group": 1})),
                node("BatchNormalization", &["t1", "bn_scale", "bn_bias", "bn_mean", "bn_var"], "n1",
                    json!({"epsilon": 1e-3, "momentum": 0.9})),
                node("Conv", &["x", "w3"], "x2", json!({})),
                node("Add", &["n1", "x2"], "a1", json!({})),
                node("Conv", &["a1", "wh", "bh"], "h0", json!({})),
                node("Sigmoid", &["h0"], "heat", json!({})),
                node("Conv", &["a1", "ws"], "scale", json!({})),
                node("Conv", &["a1", "wo"], "offset", json!({"pads": [2, 2, 2, 2], "dilations": [2, 2]})),
                node("ConvTranspose", &["r1", "wl"], "lm", json!({"strides": [2, 2], "group": 2,
                    "output_padding": [1, 1]})),
            ],
        })
    }

    fn load(description: Value) -> Result<Network, ModelError> {
        let description: Description = serde_json::from_value(description).unwrap();
        let bytes = safetensors_bytes(&weights());
        Network::new(
            &description,
            &bytes,
            Path::new("test-detector"),
            Device::Cpu,
            Kind::Float,
        )
    }

    #[test]
    fn the_interpreter_computes_what_tch_computes() {
        let network = load(description()).unwrap();
        let w: HashMap<&str, Tensor> = weights().into_iter().collect();
        let x = Tensor::randn([2, 4, 8, 8], (Kind::Float, Device::Cpu));
        let heads = network.forward(x.shallow_clone()).unwrap();

        let r1 = x
            .conv2d(&w["w1"], Some(&w["b1"]), [2, 2], [1, 1], [1, 1], 2)
            .relu();
        let t1 = r1.conv_transpose2d(&w["w2"], Some(&w["b2"]), [2, 2], [0, 0], [0, 0], 1, [1, 1]);
        let n1 = (&t1 - w["bn_mean"].view([1, 2, 1, 1]))
            / (w["bn_var"].view([1, 2, 1, 1]) + 1e-3).sqrt()
            * w["bn_scale"].view([1, 2, 1, 1])
            + w["bn_bias"].view([1, 2, 1, 1]);
        let no_bias: Option<&Tensor> = None;
        let a1 = n1 + x.conv2d(&w["w3"], no_bias, [1, 1], [0, 0], [1, 1], 1);
        let expected = [
            (
                &heads.heatmap,
                a1.conv2d(&w["wh"], Some(&w["bh"]), [1, 1], [0, 0], [1, 1], 1)
                    .sigmoid(),
            ),
            (
                &heads.scale,
                a1.conv2d(&w["ws"], no_bias, [1, 1], [0, 0], [1, 1], 1),
            ),
            (
                &heads.offset,
                a1.conv2d(&w["wo"], no_bias, [1, 1], [2, 2], [2, 2], 1),
            ),
            (
                &heads.landmarks,
                r1.conv_transpose2d(&w["wl"], no_bias, [2, 2], [0, 0], [1, 1], 2, [1, 1]),
            ),
        ];
        assert_eq!(heads.landmarks.size(), [2, 10, 9, 9]);
        for (got, want) in expected {
            assert_eq!(got.size(), want.size());
            let diff = (got - &want).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "differs by {diff}");
        }
    }

    fn refusal(edit: impl FnOnce(&mut Value)) -> String {
        let mut d = description();
        edit(&mut d);
        match load(d) {
            Ok(_) => panic!("loaded"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn what_the_interpreter_cannot_run_is_refused_by_name() {
        let e = refusal(|d| d["nodes"][5]["op"] = json!("Concat"));
        assert!(
            e.contains("node 5 (Concat") && e.contains("operator Concat is not supported"),
            "{e}"
        );
        let e = refusal(|d| d["nodes"][0]["attributes"]["pads"] = json!([0, 0, 1, 1]));
        assert!(e.contains("only symmetric"), "{e}");
        let e = refusal(|d| d["nodes"][1]["attributes"]["alpha"] = json!(0.1));
        assert!(e.contains("node 1 (Relu") && e.contains("alpha"), "{e}");
        let e = refusal(|d| d["nodes"][0]["attributes"]["auto_pad"] = json!("SAME_UPPER"));
        assert!(e.contains("auto_pad"), "{e}");
        let e = refusal(|d| d["nodes"][0]["inputs"][1] = json!("nowhere"));
        assert!(e.contains("`nowhere` is neither"), "{e}");
        let e = refusal(|d| d["nodes"][0]["attributes"]["group"] = json!(3));
        assert!(e.contains("group 3"), "{e}");
        let e = refusal(|d| d["nodes"][10]["attributes"]["output_padding"] = json!([2, 2]));
        assert!(e.contains("output_padding"), "{e}");
        let e = refusal(|d| d["outputs"]["scale"] = json!("missing"));
        assert!(e.contains("output `missing`"), "{e}");
        let e = refusal(|d| d["outputs"]["scale"] = json!("heat"));
        assert!(e.contains("same output"), "{e}");
        let e = refusal(|d| d["converter_version"] = json!(2));
        assert!(e.contains("convert the detector again"), "{e}");
        let e = refusal(|d| d["input"]["channels"] = json!("BGR"));
        assert!(e.contains("BGR"), "{e}");
        assert!(e.starts_with("invalid face detector test-detector"), "{e}");
    }
}
