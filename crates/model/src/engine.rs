//! The model thread. libtorch state (weights, CUDA context, grad mode, the
//! intra-op thread count) lives on one dedicated OS thread that owns the
//! accelerator and runs both networks: the classifier and, when one is
//! loaded, the face detector. Callers hand classifier batches and face
//! detections to its [`Inbox`]; classifier logits come back through a
//! oneshot (tokio's, so async callers can await the same receiver).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use dfscan_core::{DType, DTypeRequest, DeviceRequest, ExplainMethod, ModelIdentity};
use dfscan_imaging::PreprocessorConfig;
use tch::{nn, Device, Kind, Tensor};
use tokio::sync::oneshot;

use crate::checkpoint::{load_weights, Checkpoint};
use crate::dtype_choice;
use crate::error::ModelError;
use crate::explain;
use crate::faces::{DetectorInput, FaceDetector, HeadMaps};
use crate::inbox::{Inbox, Work};
use crate::vit::VitClassifier;

/// How the model runs.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub device: DeviceRequest,
    pub dtype: DTypeRequest,
    /// libtorch intra-op threads; 0 keeps libtorch's default (one per core).
    pub threads: usize,
    /// Most images per classifier forward pass: a batch with more rows (an
    /// item's faces are rows of their own) runs as several passes, so the
    /// activations' memory is bounded whatever the items hold.
    pub max_rows: usize,
    /// A converted face detector to load beside the classifier.
    pub face_detector: Option<PathBuf>,
}

/// What a loaded model is and expects.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub identity: ModelIdentity,
    /// Class names in class-index order (after any override).
    pub labels: Vec<String>,
    pub fake_index: usize,
    pub preprocessor: PreprocessorConfig,
    /// Channels, height, width of one input.
    pub input_shape: [usize; 3],
    /// The resolved device, e.g. `cpu` or `cuda:0`.
    pub device: String,
    /// The precision it runs in (`auto` resolved).
    pub dtype: DType,
    /// The face detector's identity, when one is loaded.
    pub face_detector: Option<ModelIdentity>,
    /// Patches per side: an explanation map's size.
    pub patch_grid: usize,
}

impl ModelInfo {
    pub fn pixels_per_image(&self) -> usize {
        self.input_shape.iter().product()
    }
}

/// Where a submitted batch's logits ([batch × labels], row-major) arrive.
pub type LogitsReceiver = oneshot::Receiver<Result<Vec<f32>, ModelError>>;

struct Request {
    pixels: Vec<f32>,
    batch: usize,
    /// Explain the rows instead of scoring them: the reply is their raw
    /// maps, [batch × patches].
    explain: Option<(ExplainMethod, Vec<i64>)>,
    reply: oneshot::Sender<Result<Vec<f32>, ModelError>>,
}

/// Most rows one explanation pass runs: its backward pass keeps every
/// layer's activations and attention maps (BENCHMARKS.md, explanations,
/// gives the bytes per row), so a large batch is explained in passes.
pub const MAX_EXPLAIN_ROWS: usize = 8;

struct Detection {
    input: DetectorInput,
    reply: oneshot::Sender<Result<HeadMaps, ModelError>>,
}

type ModelInbox = Inbox<Request, Detection>;

/// Handle to the model thread; dropping it stops the thread after the
/// work already handed over.
pub struct Engine {
    inbox: Arc<ModelInbox>,
    info: Arc<ModelInfo>,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Loads `checkpoint` on a new model thread and waits until it is ready.
    pub fn load(
        checkpoint: Checkpoint,
        labels: Vec<String>,
        fake_index: usize,
        opts: EngineOptions,
    ) -> Result<Self, ModelError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let inbox = Arc::new(ModelInbox::default());
        let work = Arc::clone(&inbox);
        let thread = std::thread::Builder::new()
            .name("dfscan-model".into())
            .spawn(move || {
                let _no_grad = tch::no_grad_guard();
                match Loaded::new(&checkpoint, labels, fake_index, opts) {
                    Ok(loaded) => {
                        let _ = ready_tx.send(Ok(loaded.info.clone()));
                        loaded.serve(&work);
                    }
                    Err(e) => {
                        work.close();
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| ModelError::Spawn(format!("the model thread: {e}")))?;
        let info = ready_rx.recv().map_err(|_| ModelError::EngineStopped)??;
        Ok(Self {
            inbox,
            info: Arc::new(info),
            thread: Some(thread),
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Queues a batch (CHW pixel values, images back to back) and returns
    /// where its logits ([batch × labels], row-major) will arrive. Blocks
    /// while two batches are already waiting; not for async contexts.
    pub fn submit_blocking(
        &self,
        pixels: Vec<f32>,
        batch: usize,
    ) -> Result<LogitsReceiver, ModelError> {
        self.send(pixels, batch, None)
    }

    /// Raw explanation maps ([rows × patches], each row's CLS relevance
    /// to its patches, row-major over the patch grid) of `rows` images by
    /// `method`, explaining each row's logit of the class `targets` names;
    /// run on the model thread in passes of at most [`MAX_EXPLAIN_ROWS`].
    /// Blocks until done; not for async contexts.
    pub fn explain_blocking(
        &self,
        pixels: Vec<f32>,
        rows: usize,
        method: ExplainMethod,
        targets: &[usize],
    ) -> Result<Vec<f32>, ModelError> {
        let labels = self.info.labels.len();
        if targets.len() != rows || targets.iter().any(|&t| t >= labels) {
            return Err(ModelError::InvalidBatch(format!(
                "{rows} rows to explain need as many target classes under {labels}, got {targets:?}"
            )));
        }
        let targets = targets.iter().map(|&t| t as i64).collect();
        self.send(pixels, rows, Some((method, targets)))?
            .blocking_recv()
            .map_err(|_| ModelError::EngineStopped)?
    }

    fn send(
        &self,
        pixels: Vec<f32>,
        batch: usize,
        explain: Option<(ExplainMethod, Vec<i64>)>,
    ) -> Result<LogitsReceiver, ModelError> {
        let expected = batch * self.info.pixels_per_image();
        if pixels.len() != expected || batch == 0 {
            return Err(ModelError::InvalidBatch(format!(
                "a batch of {batch} needs {expected} pixel values, got {}",
                pixels.len()
            )));
        }
        let (reply, rx) = oneshot::channel();
        self.inbox
            .send_batch(Request {
                pixels,
                batch,
                explain,
                reply,
            })
            .map_err(|_| ModelError::EngineStopped)?;
        Ok(rx)
    }

    /// Runs the face detector on one prepared image, batched on the model
    /// thread with the other detections waiting there; blocks until done.
    pub fn detect_blocking(&self, input: DetectorInput) -> Result<HeadMaps, ModelError> {
        if self.info.face_detector.is_none() {
            return Err(ModelError::NoFaceDetector);
        }
        let (reply, rx) = oneshot::channel();
        self.inbox
            .send_detection(Detection { input, reply })
            .map_err(|_| ModelError::EngineStopped)?;
        rx.blocking_recv().map_err(|_| ModelError::EngineStopped)?
    }

    /// Logits for a batch, from sync code.
    pub fn logits_blocking(&self, pixels: Vec<f32>, batch: usize) -> Result<Vec<f32>, ModelError> {
        self.submit_blocking(pixels, batch)?
            .blocking_recv()
            .map_err(|_| ModelError::EngineStopped)?
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.inbox.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The model as it lives on its thread.
struct Loaded {
    model: VitClassifier,
    detector: Option<FaceDetector>,
    max_rows: usize,
    // Owns the variables the model's modules point into.
    _vars: nn::VarStore,
    device: Device,
    kind: Kind,
    info: ModelInfo,
}

impl Loaded {
    fn new(
        checkpoint: &Checkpoint,
        labels: Vec<String>,
        fake_index: usize,
        opts: EngineOptions,
    ) -> Result<Self, ModelError> {
        let device = resolve_device(opts.device)?;
        if opts.threads > 0 {
            tch::set_num_threads(opts.threads as i32);
        }
        let choice = dtype_choice::choose(opts.dtype, device, &checkpoint.config);
        tracing::info!(dtype = %choice.dtype, requested = %opts.dtype, "{}", choice.reason);
        let kind = match choice.dtype {
            DType::F32 => Kind::Float,
            DType::BF16 => Kind::BFloat16,
            DType::F16 => Kind::Half,
        };
        let mut vars = nn::VarStore::new(device);
        let mut model = VitClassifier::new(&vars.root(), &checkpoint.config);
        // Variables take their final dtype before the weights arrive, so
        // loading converts tensor by tensor instead of holding two models.
        vars.set_kind(kind);
        vars.freeze();
        let loaded = load_weights(&checkpoint.weight_files, &vars.variables())?;
        let detector = opts
            .face_detector
            .as_deref()
            .map(|dir| FaceDetector::load(dir, device, kind))
            .transpose()?;
        if !loaded.unused.is_empty() {
            tracing::info!(tensors = %loaded.unused.join(", "), "checkpoint tensors not used by the classifier");
        }
        model.fuse_for_inference();
        let sha256 = loaded.sha256;
        let c = &checkpoint.config;
        let info = ModelInfo {
            identity: ModelIdentity {
                name: checkpoint.name.clone(),
                sha256,
            },
            labels,
            fake_index,
            preprocessor: checkpoint.preprocessor.clone(),
            input_shape: [
                c.num_channels as usize,
                c.image_size as usize,
                c.image_size as usize,
            ],
            device: device_name(device),
            dtype: choice.dtype,
            face_detector: detector.as_ref().map(|d| d.identity().clone()),
            patch_grid: c.grid() as usize,
        };
        tracing::info!(model = %info.identity.name, sha256 = %info.identity.sha256, device = %info.device, dtype = %info.dtype, threads = tch::get_num_threads(), "model loaded");
        Ok(Self {
            model,
            detector,
            max_rows: opts.max_rows.max(1),
            _vars: vars,
            device,
            kind,
            info,
        })
    }

    fn serve(&self, inbox: &ModelInbox) {
        while let Some(work) = inbox.next() {
            match work {
                Work::Batch(req) => {
                    let result = guarded(|| match &req.explain {
                        None => self.forward(&req.pixels, req.batch),
                        Some((method, targets)) => self.explain(&req.pixels, *method, targets),
                    });
                    let _ = req.reply.send(result);
                }
                Work::Detections(detections) => self.detect(detections),
            }
        }
    }

    /// Runs waiting detections as one batch; a failed batch fails each.
    fn detect(&self, detections: Vec<Detection>) {
        let (inputs, replies): (Vec<_>, Vec<_>) =
            detections.into_iter().map(|d| (d.input, d.reply)).unzip();
        let result = guarded(|| match &self.detector {
            Some(detector) => detector.run(&inputs),
            None => Err(ModelError::NoFaceDetector),
        });
        match result {
            Ok(maps) => {
                for (reply, maps) in replies.into_iter().zip(maps) {
                    let _ = reply.send(Ok(maps));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(ModelError::Torch(message.clone())));
                }
            }
        }
    }

    /// Logits of `batch` images, in passes of at most `max_rows`.
    fn forward(&self, pixels: &[f32], batch: usize) -> Result<Vec<f32>, ModelError> {
        let mut logits = Vec::with_capacity(batch * self.info.labels.len());
        for chunk in pixels.chunks(self.max_rows * self.info.pixels_per_image()) {
            let out = self.model.forward(&self.input(chunk));
            logits.extend(host_floats(&out)?);
        }
        Ok(logits)
    }

    /// Raw maps of the images in `pixels`, in passes of at most
    /// [`MAX_EXPLAIN_ROWS`].
    fn explain(
        &self,
        pixels: &[f32],
        method: ExplainMethod,
        targets: &[i64],
    ) -> Result<Vec<f32>, ModelError> {
        let patches = self.info.patch_grid * self.info.patch_grid;
        let mut maps = Vec::with_capacity(targets.len() * patches);
        let per_pass = MAX_EXPLAIN_ROWS.min(self.max_rows);
        let chunks = pixels.chunks(per_pass * self.info.pixels_per_image());
        for (chunk, targets) in chunks.zip(targets.chunks(per_pass)) {
            let out = explain::maps(&self.model, &self.input(chunk), method, targets);
            maps.extend(host_floats(&out)?);
        }
        Ok(maps)
    }

    /// Images back to back as the model's input tensor, on its device.
    fn input(&self, chunk: &[f32]) -> Tensor {
        let [c, h, w] = self.info.input_shape.map(|d| d as i64);
        let rows = (chunk.len() / self.info.pixels_per_image()) as i64;
        Tensor::from_slice(chunk)
            .view([rows, c, h, w])
            .to_device(self.device)
            .to_kind(self.kind)
    }
}

/// A result tensor's values as f32 on the host, row-major.
fn host_floats(t: &Tensor) -> Result<Vec<f32>, ModelError> {
    Ok(Vec::<f32>::try_from(
        t.to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1),
    )?)
}

/// Runs `f`, turning a panic (libtorch's C++ errors surface as panics in
/// tch) into the work's error instead of the thread's end.
fn guarded<T>(f: impl FnOnce() -> Result<T, ModelError>) -> Result<T, ModelError> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|panic| Err(ModelError::Torch(panic_message(panic))))
}

/// How results and logs name a device: `cpu` or `cuda:N`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".into(),
    }
}

/// `auto` takes CUDA when present; asking for CUDA without it is an error.
pub fn resolve_device(request: DeviceRequest) -> Result<Device, ModelError> {
    match request {
        DeviceRequest::Cpu => Ok(Device::Cpu),
        DeviceRequest::Auto => Ok(Device::cuda_if_available()),
        DeviceRequest::Cuda(n) => {
            let count = tch::Cuda::device_count();
            if !tch::Cuda::is_available() {
                Err(ModelError::Device(format!(
                    "{request} was requested but libtorch finds no CUDA device (is the NVIDIA driver \
                     installed and visible?); use --device cpu or --device auto"
                )))
            } else if n as i64 >= count {
                Err(ModelError::Device(format!(
                    "{request} was requested but only {count} CUDA device(s) exist"
                )))
            } else {
                Ok(Device::Cuda(n))
            }
        }
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the forward pass panicked".into())
}
