//! Adapter choice, the device, buffers and read-back: the explicit plumbing of wgpu's
//! `hello_compute`, in one struct. Every wait on the GPU has a timeout; validation errors,
//! out-of-memory and a lost device surface as [`Error::Gpu`] instead of a panic or a hang.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use wgpu::util::DeviceExt;

use crate::{Error, Result, engine::EngineInfo};

/// How long one wait on the GPU may take before it is reported as a hang.
pub const GPU_TIMEOUT: Duration = Duration::from_secs(600);

/// Which adapter to use: `--backend`/`WGPU_BACKEND` and `--adapter`/`WGPU_ADAPTER_NAME`.
#[derive(Debug, Clone, Default)]
pub struct AdapterRequest {
    /// `vulkan`, `metal`, `dx12`, `gl` (or a comma list); `None`: `WGPU_BACKEND`, else all.
    pub backend: Option<String>,
    /// A case-insensitive part of the adapter's name; `None`: `WGPU_ADAPTER_NAME`, else any.
    pub name: Option<String>,
}

impl AdapterRequest {
    /// The backends asked for: `--backend`, else `WGPU_BACKEND`, else all. An unknown name in
    /// either is a usage error that names where it came from.
    pub fn backends(&self) -> Result<wgpu::Backends> {
        if let Some(b) = &self.backend {
            return parse_backends(b);
        }
        match std::env::var("WGPU_BACKEND") {
            Ok(v) if !v.trim().is_empty() => {
                parse_backends(&v).map_err(|e| Error::usage(format!("WGPU_BACKEND={v}: {e}")))
            }
            _ => Ok(wgpu::Backends::all()),
        }
    }
    /// The requested part of an adapter's name, as given, and where it was given.
    fn name_request(&self) -> Option<(String, &'static str)> {
        match &self.name {
            Some(n) if !n.is_empty() => Some((n.clone(), "--adapter")),
            Some(_) => None,
            None => std::env::var("WGPU_ADAPTER_NAME").ok().filter(|n| !n.is_empty()).map(|n| (n, "WGPU_ADAPTER_NAME")),
        }
    }
    fn name_filter(&self) -> Option<String> {
        self.name_request().map(|(n, _)| n.to_lowercase())
    }
    /// Whether a backend was asked for explicitly (by flag or environment).
    fn explicit_backend(&self) -> bool {
        self.backend.is_some() || std::env::var("WGPU_BACKEND").is_ok_and(|v| !v.trim().is_empty())
    }
}

/// `vulkan`, `metal`, `dx12`, `gl` (comma-separated) as wgpu backends.
pub fn parse_backends(list: &str) -> Result<wgpu::Backends> {
    let mut out = wgpu::Backends::empty();
    for name in list.split(',').map(|s| s.trim().to_lowercase()) {
        out |= match name.as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "metal" | "mtl" => wgpu::Backends::METAL,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "gl" | "gles" | "opengl" => wgpu::Backends::GL,
            other => {
                return Err(Error::usage(format!("unknown backend `{other}`: use vulkan, metal, dx12 or gl")));
            }
        };
    }
    Ok(out)
}

/// A backend in words: `Vulkan`, `Metal`, `DX12`, `OpenGL`.
pub fn backend_name(backend: wgpu::Backend) -> &'static str {
    match backend {
        wgpu::Backend::Vulkan => "Vulkan",
        wgpu::Backend::Metal => "Metal",
        wgpu::Backend::Dx12 => "DX12",
        wgpu::Backend::Gl => "OpenGL",
        wgpu::Backend::BrowserWebGpu => "WebGPU",
        _ => "no backend",
    }
}

/// A set of backends in words: `Vulkan, Metal, DX12 and OpenGL`.
pub fn backends_name(backends: wgpu::Backends) -> String {
    let names: Vec<&str> = [wgpu::Backend::Vulkan, wgpu::Backend::Metal, wgpu::Backend::Dx12, wgpu::Backend::Gl]
        .into_iter()
        .filter(|&b| backends.contains(b.into()))
        .map(backend_name)
        .collect();
    match names.as_slice() {
        [] => "no backend".into(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// A device type in words: `discrete GPU`, `integrated GPU`, `virtual GPU`, `CPU`, `other`.
pub fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Cpu => "CPU",
        wgpu::DeviceType::Other => "other",
    }
}

/// A byte count in words: `628 MB (628,000,000 bytes)`-style, decimal units.
fn bytes(n: u64) -> String {
    match n {
        0..1_000_000 => format!("{n} bytes"),
        1_000_000..1_000_000_000 => format!("{:.0} MB", n as f64 / 1e6),
        _ => format!("{:.1} GB", n as f64 / 1e9),
    }
}

/// An adapter in words: `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, CPU)`.
pub fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({}, {})", info.name, backend_name(info.backend), device_type_name(info.device_type))
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Every adapter of the requested backends, best first (discrete GPUs, then integrated, virtual,
/// CPU; Vulkan before Metal, DX12 and GL).
pub fn adapters(req: &AdapterRequest) -> Result<Vec<wgpu::Adapter>> {
    let backends = req.backends()?;
    let filter = req.name_filter();
    // One instance per backend: with several backends in one instance wgpu 30 initialises EGL
    // next to Vulkan, which costs time and prints XDG_RUNTIME_DIR noise on headless machines.
    let enumerate = |mask: wgpu::Backends| -> Vec<wgpu::Adapter> {
        let compiled = wgpu::Instance::enabled_backend_features();
        (mask & compiled).iter().flat_map(|b| pollster::block_on(instance(b).enumerate_adapters(b))).collect()
    };
    // Unless asked for, GL is only a fallback.
    let explicit = req.explicit_backend();
    let native = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    let mut all = if explicit { enumerate(backends) } else { enumerate(backends & native) };
    if all.is_empty() && !explicit {
        all = enumerate(backends & wgpu::Backends::GL);
    }
    let mut found: Vec<wgpu::Adapter> = all
        .into_iter()
        .filter(|a| filter.as_ref().is_none_or(|f| a.get_info().name.to_lowercase().contains(f)))
        .collect();
    found.sort_by_key(|a| rank(&a.get_info()));
    Ok(found)
}

/// Every adapter of every backend in `backends` that wgpu was built with, GL included, with no
/// name filter, best first: what `steplens adapters` lists and what errors offer.
pub fn all_adapters(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let compiled = wgpu::Instance::enabled_backend_features();
    let mut all: Vec<wgpu::Adapter> =
        (backends & compiled).iter().flat_map(|b| pollster::block_on(instance(b).enumerate_adapters(b))).collect();
    all.sort_by_key(|a| rank(&a.get_info()));
    all
}

fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan => 0,
        wgpu::Backend::Metal => 1,
        wgpu::Backend::Dx12 => 2,
        wgpu::Backend::Gl => 3,
        _ => 4,
    };
    (kind, backend)
}

/// A device and its queue, with the errors wgpu reports asynchronously collected for checking.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub timestamps: bool,
    /// Whether the device was opened with `Features::SUBGROUP`.
    pub subgroups: bool,
    errors: Arc<Mutex<Vec<String>>>,
    staging: Mutex<Option<wgpu::Buffer>>,
}

impl GpuContext {
    /// The best adapter matching the request.
    ///
    /// A request nothing can satisfy while adapters exist (an adapter name no adapter has, a
    /// backend without adapters) is a usage error whose sentence lists the adapters there are;
    /// no adapter at all is a GPU error.
    pub fn new(req: &AdapterRequest) -> Result<GpuContext> {
        if let Some(adapter) = adapters(req)?.into_iter().next() {
            return GpuContext::from_adapter(&adapter);
        }
        let backends = req.backends()?;
        let existing: Vec<String> =
            all_adapters(wgpu::Backends::all()).iter().map(|a| describe(&a.get_info())).collect();
        let list = format!("the adapters are {}", existing.join("; "));
        let wanted = match (req.name_request(), req.explicit_backend()) {
            (Some((name, source)), false) => Some(format!("no adapter's name contains `{name}` ({source})")),
            (Some((name, source)), true) => {
                Some(format!("no {} adapter's name contains `{name}` ({source})", backends_name(backends)))
            }
            (None, true) => Some(format!("no adapter found for {}", backends_name(backends))),
            (None, false) => None,
        };
        match wanted {
            Some(what) if !existing.is_empty() => Err(Error::usage(format!("{what}: {list}"))),
            _ => Err(Error::gpu(format!(
                "no adapter found for {} (install a Vulkan driver, e.g. Mesa's lavapipe: apt-get install mesa-vulkan-drivers)",
                backends_name(backends)
            ))),
        }
    }

    pub fn from_adapter(adapter: &wgpu::Adapter) -> Result<GpuContext> {
        let info = adapter.get_info();
        // The adapter's own limits: full MNIST and large sweeps need more than the defaults.
        let limits = adapter.limits();
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let mut features = wgpu::Features::empty();
        if timestamps {
            features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        // Subgroup operations where the adapter has them (the subgroup training kernel).
        let subgroups = adapter.features().contains(wgpu::Features::SUBGROUP);
        if subgroups {
            features |= wgpu::Features::SUBGROUP;
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("steplens"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::gpu(format!("cannot open {}: {e}", info.name)))?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let text = match &e {
                wgpu::Error::OutOfMemory { .. } => "out of GPU memory".to_string(),
                other => other.to_string(),
            };
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(text);
        }));
        let lost = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                lost.lock().unwrap_or_else(|p| p.into_inner()).push(format!("the device was lost: {msg}"));
            }
        });
        Ok(GpuContext { device, queue, info, limits, timestamps, subgroups, errors, staging: Mutex::new(None) })
    }

    /// The adapter's subgroup sizes (min, max), where it has subgroup operations.
    pub fn subgroup_sizes(&self) -> Option<(u32, u32)> {
        self.subgroups.then_some((self.info.subgroup_min_size, self.info.subgroup_max_size))
    }

    pub fn engine_info(&self) -> EngineInfo {
        EngineInfo {
            device: "gpu".into(),
            adapter: self.info.name.clone(),
            backend: format!("{:?}", self.info.backend).to_lowercase(),
            driver: format!("{} {}", self.info.driver, self.info.driver_info).trim().to_string(),
            device_type: device_type_name(self.info.device_type).into(),
        }
    }

    /// Fails with the first error wgpu reported since the last check.
    pub fn check(&self) -> Result<()> {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.is_empty() {
            return Ok(());
        }
        let first = errors.remove(0);
        errors.clear();
        Err(Error::gpu(first))
    }

    /// A storage buffer initialised with `data`.
    pub fn buffer_init(&self, label: &str, data: &[u8], usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        self.check_size(label, data.len() as u64)?;
        // Zero-sized bindings are invalid: keep at least one word.
        let padded;
        let contents = if data.len() < 4 {
            padded = [data, &[0u8; 4][..4 - data.len()]].concat();
            &padded[..]
        } else {
            data
        };
        let buffer =
            self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents, usage });
        self.check()?;
        Ok(buffer)
    }

    /// A `width` × `height` texture of vec4<u32> texels (Rgba32Uint, read by `textureLoad`)
    /// holding `data`, 16 bytes a texel, row after row.
    pub fn texel_words(&self, label: &str, width: u32, height: u32, data: &[u8]) -> wgpu::Texture {
        use wgpu::util::DeviceExt;
        let desc = wgpu::TextureDescriptor {
            label: Some(label),
            size: wgpu::Extent3d { width, height, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Uint,
            usage: wgpu::TextureUsages::TEXTURE_BINDING,
            view_formats: &[],
        };
        self.device.create_texture_with_data(&self.queue, &desc, wgpu::util::TextureDataOrder::LayerMajor, data)
    }

    /// A storage buffer of `size` bytes (at least 4), usable as copy source and destination.
    pub fn buffer(&self, label: &str, size: u64) -> Result<wgpu::Buffer> {
        self.check_size(label, size)?;
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.check()?;
        Ok(buffer)
    }

    fn check_size(&self, label: &str, size: u64) -> Result<()> {
        let max = self.limits.max_storage_buffer_binding_size;
        if size > max {
            // The data itself (the engine labels its buffers `<set> features` / `<set> targets`):
            // no flag makes it smaller, the CPU reference has no such limit.
            if let Some(set) = label.strip_suffix(" features").or_else(|| label.strip_suffix(" targets")) {
                return Err(Error::gpu(format!(
                    "the data {set} does not fit this adapter: it needs {}, more than the adapter's largest storage binding ({}); use --device cpu (the f64 reference, which has no such limit) or less data",
                    bytes(size),
                    bytes(max)
                )));
            }
            return Err(Error::gpu(format!(
                "{label} needs {}, more than this adapter's largest storage binding ({}): use a smaller batch, fewer points or fewer runs",
                bytes(size),
                bytes(max)
            )));
        }
        Ok(())
    }

    /// Submit the encoder's work, then read `ranges` (buffer, byte offset, byte length) back:
    /// one submit, one wait, one map of a persistent staging buffer.
    pub fn submit_and_read(
        &self,
        mut encoder: wgpu::CommandEncoder,
        ranges: &[(&wgpu::Buffer, u64, u64)],
    ) -> Result<Vec<Vec<u8>>> {
        let total: u64 = ranges.iter().map(|r| r.2.next_multiple_of(4)).sum();
        let mut staging_slot = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        let staging = self.staging_buffer(&mut staging_slot, total.max(4));
        let mut at = 0;
        for &(buf, offset, len) in ranges {
            let len4 = len.next_multiple_of(4);
            if len4 > 0 {
                encoder.copy_buffer_to_buffer(buf, offset, &staging, at, len4);
            }
            at += len4;
        }
        let index = self.queue.submit([encoder.finish()]);
        if total == 0 {
            self.wait(index)?;
            return Ok(ranges.iter().map(|_| Vec::new()).collect());
        }
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, 0..total, move |r| {
            let _ = tx.send(r);
        });
        self.wait(index)?;
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::gpu(format!("reading results back failed: {e}"))),
            Err(_) => return Err(Error::gpu("reading results back timed out")),
        }
        let out = {
            let view = staging
                .get_mapped_range(0..total)
                .map_err(|e| Error::gpu(format!("reading results back failed: {e}")))?;
            let mut out = Vec::with_capacity(ranges.len());
            let mut at = 0usize;
            for &(_, _, len) in ranges {
                out.push(view[at..at + len as usize].to_vec());
                at += len.next_multiple_of(4) as usize;
            }
            out
        };
        staging.unmap();
        Ok(out)
    }

    /// Submit without reading anything back and wait for completion.
    pub fn submit_and_wait(&self, encoder: wgpu::CommandEncoder) -> Result<()> {
        let index = self.queue.submit([encoder.finish()]);
        self.wait(index)
    }

    fn wait(&self, index: wgpu::SubmissionIndex) -> Result<()> {
        self.device.poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: Some(GPU_TIMEOUT) }).map_err(
            |e| match e {
                wgpu::PollError::Timeout => Error::gpu(format!(
                    "the GPU did not finish within {} s: the device may be hung",
                    GPU_TIMEOUT.as_secs()
                )),
                other => Error::gpu(other.to_string()),
            },
        )?;
        self.check()
    }

    fn staging_buffer(&self, slot: &mut Option<wgpu::Buffer>, size: u64) -> wgpu::Buffer {
        if let Some(b) = slot.as_ref()
            && b.size() >= size
        {
            return b.clone();
        }
        let b = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size: size.next_multiple_of(wgpu::MAP_ALIGNMENT).max(1 << 16),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        *slot = Some(b.clone());
        b
    }

    pub fn encoder(&self) -> wgpu::CommandEncoder {
        self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }
}
