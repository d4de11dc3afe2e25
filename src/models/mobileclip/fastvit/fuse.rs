//! The FastViT-MCi tower's training form (open_clip's checkpoint: MobileOne branches, BatchNorms,
//! layer scales), or the inference form timm's `reparameterize_model` leaves (`reparam_conv`
//! where a module has `reparameterize`, the rest as trained), fused into the form
//! [`super::FastVit`] runs ([`super::names`]): one convolution with bias per MobileOne block
//! (its kxk branches, 1x1 scale branch padded to kxk and identity BatchNorm, each BatchNorm
//! folded: `w * gamma / std`, `beta - mean * gamma / std`, eps 1e-5), per large-kernel
//! convolution (the small kernel padded into the large) and per ConvMlp's depthwise convolution;
//! RepMixer's `x + gamma * (mixer(x) - norm(x))` as one depthwise convolution added to `x`, and
//! the positional convolution likewise (their identity is kept out of the kernel so that it
//! survives f16 storage: `1 + 1e-5` is 1 in f16); every layer scale folded into the layer before
//! it (the MLP's `fc2`, attention's `proj`); attention's BatchNorm folded into `qkv` (weight
//! columns scaled, the shift times the weight as a bias) with `head_dim^-0.5` folded into q.
//! As timm's `reparameterize` methods and `_fuse_bn_tensor` compute it (timm 1.0, fastvit.py).

use super::names::{self, HEAD_DIM};
use super::stored::{bad, Stored, StoredTensors, Values};
use crate::error::ModelError;
use crate::kernels::qgemm::quantize_rows;
use crate::models::mobileclip::vision::VisionShape;

const BN_EPS: f32 = 1e-5;
const T: &str = "visual.trunk";

/// A convolution's kernel `(c_out, per_group, k, k)` and bias, and whether any part of it was
/// stored as int8 (it is quantised again once fused).
struct Conv {
    c_out: usize,
    per_group: usize,
    k: usize,
    w: Vec<f32>,
    b: Vec<f32>,
    int8: bool,
}

impl Conv {
    fn zeros(c_out: usize, per_group: usize, k: usize) -> Self {
        Self {
            c_out,
            per_group,
            k,
            w: vec![0.0; c_out * per_group * k * k],
            b: vec![0.0; c_out],
            int8: false,
        }
    }

    /// Adds `other` (a kernel of the same channels, at most as large, centred).
    fn add(&mut self, other: &Conv, what: &str) -> Result<(), ModelError> {
        if (other.c_out, other.per_group) != (self.c_out, self.per_group)
            || other.k > self.k
            || (self.k - other.k) % 2 != 0
        {
            return Err(bad(format!(
                "{what}: a branch of shape [{}, {}, {k}, {k}] does not fit [{}, {}, {}, {}]",
                other.c_out,
                other.per_group,
                self.c_out,
                self.per_group,
                self.k,
                self.k,
                k = other.k
            )));
        }
        let pad = (self.k - other.k) / 2;
        for o in 0..self.c_out * self.per_group {
            for y in 0..other.k {
                for x in 0..other.k {
                    self.w[(o * self.k + y + pad) * self.k + x + pad] +=
                        other.w[(o * other.k + y) * other.k + x];
                }
            }
        }
        for (b, o) in self.b.iter_mut().zip(&other.b) {
            *b += o;
        }
        self.int8 |= other.int8;
        Ok(())
    }

    /// `scale[o] * (self)`: every output channel's weights and bias.
    fn scale_outputs(&mut self, scale: &[f32]) {
        let per_out = self.per_group * self.k * self.k;
        for (o, s) in scale.iter().enumerate() {
            self.w[o * per_out..(o + 1) * per_out]
                .iter_mut()
                .for_each(|w| *w *= s);
            self.b[o] *= s;
        }
    }

    /// The identity as a kernel (1 at the centre of each channel's own input), times `scale`.
    fn add_identity(&mut self, scale: &[f32]) {
        let c = self.k / 2;
        for (o, s) in scale.iter().enumerate() {
            let input = o % self.per_group;
            self.w[((o * self.per_group + input) * self.k + c) * self.k + c] += s;
        }
    }
}

/// A BatchNorm as `x * scale + shift`.
struct Bn {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

/// Reads the source tensors and writes the fused ones.
struct Fuser {
    src: StoredTensors,
    out: Vec<(String, Stored)>,
}

impl Fuser {
    fn f32(&mut self, name: &str, shape: &[usize]) -> Result<(Vec<f32>, bool), ModelError> {
        self.src.take_f32(name, shape)
    }

    /// The shape of `name`, which must have `rank` dimensions.
    fn shape(&self, name: &str, rank: usize) -> Result<Vec<usize>, ModelError> {
        let s = self.src.shape(name).ok_or_else(|| {
            bad(format!(
                "tensor {name} is missing (the file is damaged or not a MobileCLIP FastViT tower)"
            ))
        })?;
        if s.len() != rank {
            return Err(bad(format!(
                "tensor {name} has shape {s:?}; expected {rank} dimensions"
            )));
        }
        Ok(s.to_vec())
    }

    fn bn(&mut self, p: &str, c: usize) -> Result<Bn, ModelError> {
        let gamma = self.f32(&format!("{p}.weight"), &[c])?.0;
        let beta = self.f32(&format!("{p}.bias"), &[c])?.0;
        let mean = self.f32(&format!("{p}.running_mean"), &[c])?.0;
        let var = self.f32(&format!("{p}.running_var"), &[c])?.0;
        let scale: Vec<f32> = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g / (v + BN_EPS).sqrt())
            .collect();
        let shift = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        Ok(Bn { scale, shift })
    }

    /// timm's `ConvNormAct` without activation (`{p}.conv`, `{p}.bn`), the BatchNorm folded.
    fn conv_bn(&mut self, p: &str) -> Result<Conv, ModelError> {
        let name = format!("{p}.conv.weight");
        let s = self.shape(&name, 4)?;
        if s[2] != s[3] || s[2] % 2 == 0 {
            return Err(bad(format!(
                "tensor {name} has shape {s:?}; FastViT's kernels are square and odd"
            )));
        }
        let (w, int8) = self.f32(&name, &s)?;
        let bn = self.bn(&format!("{p}.bn"), s[0])?;
        let mut conv = Conv {
            c_out: s[0],
            per_group: s[1],
            k: s[2],
            w,
            b: vec![0.0; s[0]],
            int8,
        };
        conv.scale_outputs(&bn.scale);
        conv.b = bn.shift;
        Ok(conv)
    }

    /// A convolution already fused (timm's `reparam_conv`), if the file has it.
    fn reparam(
        &mut self,
        p: &str,
        c_out: usize,
        per_group: usize,
        k: usize,
    ) -> Result<Option<Conv>, ModelError> {
        let name = format!("{p}.reparam_conv.weight");
        if !self.src.contains(&name) {
            return Ok(None);
        }
        let (w, int8) = self.f32(&name, &[c_out, per_group, k, k])?;
        let b = self.f32(&format!("{p}.reparam_conv.bias"), &[c_out])?.0;
        Ok(Some(Conv {
            c_out,
            per_group,
            k,
            w,
            b,
            int8,
        }))
    }

    /// A MobileOne block `(c_out, per_group, k, k)`: its kxk branches, scale branch and identity
    /// BatchNorm, whichever the file has (timm's `_get_kernel_bias`).
    fn mobileone(
        &mut self,
        p: &str,
        c_out: usize,
        per_group: usize,
        k: usize,
    ) -> Result<Conv, ModelError> {
        if let Some(conv) = self.reparam(p, c_out, per_group, k)? {
            return Ok(conv);
        }
        let mut fused = Conv::zeros(c_out, per_group, k);
        for i in 0.. {
            let branch = format!("{p}.conv_kxk.{i}");
            if !self.src.contains(&format!("{branch}.conv.weight")) {
                break;
            }
            let conv = self.conv_bn(&branch)?;
            fused.add(&conv, p)?;
        }
        if self.src.contains(&format!("{p}.conv_scale.conv.weight")) {
            let conv = self.conv_bn(&format!("{p}.conv_scale"))?;
            fused.add(&conv, p)?;
        }
        if self.src.contains(&format!("{p}.identity.weight")) {
            let bn = self.bn(&format!("{p}.identity"), c_out)?;
            fused.add_identity(&bn.scale);
            fused.b.iter_mut().zip(&bn.shift).for_each(|(b, s)| *b += s);
        }
        Ok(fused)
    }

    /// A residual convolution `x + conv(x)` given as one kernel that includes the identity
    /// (timm's fused RepMixer and RepCPE): the identity taken back out.
    fn without_identity(mut conv: Conv) -> Conv {
        let minus_one = vec![-1.0; conv.c_out];
        conv.add_identity(&minus_one);
        conv
    }

    /// A layer scale `(c, 1, 1)`, if the file has it.
    fn gamma(&mut self, name: &str, c: usize) -> Result<Option<Vec<f32>>, ModelError> {
        if !self.src.contains(name) {
            return Ok(None);
        }
        Ok(Some(self.f32(name, &[c, 1, 1])?.0))
    }

    /// Writes `conv` as `{name}.weight` and `.bias`; `quantisable`: a 1x1 convolution whose
    /// weight is stored as int8 again when any part of it was.
    fn put_conv(&mut self, name: &str, conv: Conv, quantisable: bool) {
        let shape = vec![conv.c_out, conv.per_group, conv.k, conv.k];
        self.put_weight(name, shape, conv.w, conv.b, quantisable && conv.int8);
    }

    fn put_weight(&mut self, name: &str, shape: Vec<usize>, w: Vec<f32>, b: Vec<f32>, int8: bool) {
        let rows = shape[0];
        let values = if int8 {
            let (values, scales) = quantize_rows(&w, w.len() / rows);
            Values::Int8 { values, scales }
        } else {
            Values::F32(w)
        };
        self.out
            .push((format!("{name}.weight"), Stored { shape, values }));
        self.put_f32(&format!("{name}.bias"), b);
    }

    fn put_f32(&mut self, name: &str, values: Vec<f32>) {
        self.out.push((
            name.to_string(),
            Stored {
                shape: vec![values.len()],
                values: Values::F32(values),
            },
        ));
    }

    /// A squeeze-excite module's two 1x1 convolutions, copied.
    fn se(&mut self, from: &str, to: &str, c: usize) -> Result<(), ModelError> {
        let rd = self.shape(&format!("{from}.fc1.weight"), 4)?[0];
        for (fc, shape) in [("fc1", [rd, c, 1, 1]), ("fc2", [c, rd, 1, 1])] {
            let (w, int8) = self.f32(&format!("{from}.{fc}.weight"), &shape)?;
            let b = self.f32(&format!("{from}.{fc}.bias"), &[shape[0]])?.0;
            self.put_weight(&format!("{to}.{fc}"), shape.to_vec(), w, b, int8);
        }
        Ok(())
    }

    /// ConvMlp: depthwise 7x7 + BatchNorm, fc1, GELU, fc2, with the block's layer scale on fc2.
    fn mlp(
        &mut self,
        block: &str,
        to: &str,
        c: usize,
        gamma: Option<Vec<f32>>,
    ) -> Result<(), ModelError> {
        let p = format!("{block}.mlp");
        let conv = self.conv_bn(&format!("{p}.conv"))?;
        if (conv.c_out, conv.per_group) != (c, 1) {
            return Err(bad(format!(
                "{p}.conv is not a depthwise convolution over {c} channels"
            )));
        }
        self.put_conv(&format!("{to}.mlp.conv"), conv, false);
        let hidden = self.shape(&format!("{p}.fc1.weight"), 4)?[0];
        let (w1, q1) = self.f32(&format!("{p}.fc1.weight"), &[hidden, c, 1, 1])?;
        let b1 = self.f32(&format!("{p}.fc1.bias"), &[hidden])?.0;
        self.put_weight(&format!("{to}.mlp.fc1"), vec![hidden, c, 1, 1], w1, b1, q1);
        let (w2, q2) = self.f32(&format!("{p}.fc2.weight"), &[c, hidden, 1, 1])?;
        let b2 = self.f32(&format!("{p}.fc2.bias"), &[c])?.0;
        let mut fc2 = Conv {
            c_out: c,
            per_group: hidden,
            k: 1,
            w: w2,
            b: b2,
            int8: q2,
        };
        if let Some(g) = gamma {
            fc2.scale_outputs(&g);
        }
        self.put_conv(&format!("{to}.mlp.fc2"), fc2, true);
        Ok(())
    }

    /// RepMixer as a residual depthwise convolution: `gamma * (mixer - norm)`.
    fn repmixer(&mut self, block: &str, to: &str, c: usize) -> Result<(), ModelError> {
        let p = format!("{block}.token_mixer");
        let k = match self.src.shape(&format!("{p}.reparam_conv.weight")) {
            Some(s) if s.len() == 4 => s[2],
            _ => self.shape(&format!("{p}.mixer.conv_kxk.0.conv.weight"), 4)?[2],
        };
        let conv = match self.reparam(&p, c, 1, k)? {
            Some(fused) => Self::without_identity(fused),
            None => {
                let mut mixer = self.mobileone(&format!("{p}.mixer"), c, 1, k)?;
                let norm = self.mobileone(&format!("{p}.norm"), c, 1, k)?;
                mixer.w.iter_mut().zip(&norm.w).for_each(|(m, n)| *m -= n);
                mixer.b.iter_mut().zip(&norm.b).for_each(|(m, n)| *m -= n);
                if let Some(g) = self.gamma(&format!("{p}.layer_scale.gamma"), c)? {
                    mixer.scale_outputs(&g);
                }
                mixer
            }
        };
        self.put_conv(&format!("{to}.mixer"), conv, false);
        let gamma = self.gamma(&format!("{block}.layer_scale.gamma"), c)?;
        self.mlp(block, to, c, gamma)
    }

    /// The attention block: BatchNorm into qkv, q pre-scaled, layer scales into proj and fc2.
    fn attention(&mut self, block: &str, to: &str, c: usize) -> Result<(), ModelError> {
        let bn = self.bn(&format!("{block}.norm"), c)?;
        let p = format!("{block}.token_mixer");
        let (mut w, q_int8) = self.f32(&format!("{p}.qkv.weight"), &[3 * c, c])?;
        let mut b = match self.src.contains(&format!("{p}.qkv.bias")) {
            true => self.f32(&format!("{p}.qkv.bias"), &[3 * c])?.0,
            false => vec![0.0; 3 * c],
        };
        let q_scale = (HEAD_DIM as f32).powf(-0.5);
        for (o, row) in w.chunks_exact_mut(c).enumerate() {
            b[o] += row.iter().zip(&bn.shift).map(|(w, s)| w * s).sum::<f32>();
            row.iter_mut().zip(&bn.scale).for_each(|(w, s)| *w *= s);
            if o < c {
                row.iter_mut().for_each(|w| *w *= q_scale);
                b[o] *= q_scale;
            }
        }
        self.put_weight(&format!("{to}.attn.qkv"), vec![3 * c, c], w, b, q_int8);
        let (w, p_int8) = self.f32(&format!("{p}.proj.weight"), &[c, c])?;
        let b = self.f32(&format!("{p}.proj.bias"), &[c])?.0;
        let mut proj = Conv {
            c_out: c,
            per_group: c,
            k: 1,
            w,
            b,
            int8: p_int8,
        };
        if let Some(g) = self.gamma(&format!("{block}.layer_scale_1.gamma"), c)? {
            proj.scale_outputs(&g);
        }
        self.put_weight(
            &format!("{to}.attn.proj"),
            vec![c, c],
            proj.w,
            proj.b,
            proj.int8,
        );
        let gamma = self.gamma(&format!("{block}.layer_scale_2.gamma"), c)?;
        self.mlp(block, to, c, gamma)
    }

    /// The first output dimension of the first of `names` the file has.
    fn out_channels(&self, names: &[String]) -> Result<usize, ModelError> {
        match names.iter().find_map(|n| self.src.shape(n)) {
            Some(s) if !s.is_empty() => Ok(s[0]),
            _ => Err(bad(format!(
                "tensor {} is missing (the file is damaged or not a MobileCLIP FastViT tower)",
                names[0]
            ))),
        }
    }
}

/// Refuses a training-form file whose names are not exactly an MCi tower's of these depths (as
/// candle's reader does): a missing branch would otherwise fuse silently into another model.
fn check_training_names(src: &StoredTensors, depths: &[usize]) -> Result<(), ModelError> {
    let Ok(depths) = <[usize; names::MAX_STAGES]>::try_from(depths) else {
        return Err(bad(format!("the image tower has {} stages; FastViT-MCi has {}", depths.len(), names::MAX_STAGES)));
    };
    let expected = VisionShape { depths, stem_width: 0, mlp_ratio: 0, embed_dim: 0 }.tensor_names();
    if let Some(missing) = expected.iter().find(|n| !src.contains(n)) {
        return Err(bad(format!("tensor {missing} is missing (the file is damaged or not a MobileCLIP checkpoint of this shape)")));
    }
    match src.names().find(|n| !expected.contains(*n)) {
        Some(extra) => Err(bad(format!("tensor {extra} is not part of a MobileCLIP checkpoint of this shape"))),
        None => Ok(()),
    }
}

/// Blocks of each stage, counted from the names (`stages.{s}.blocks.{b}.`).
pub fn stage_depths(names: impl Iterator<Item = String>) -> Result<Vec<usize>, ModelError> {
    let prefix = format!("{T}.stages.");
    let mut depths: Vec<usize> = Vec::new();
    for name in names {
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let mut parts = rest.split('.');
        let Some(stage) = parts
            .next()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&s| s < names::MAX_STAGES)
        else {
            return Err(bad(format!("tensor {name} belongs to a stage past the fourth: MCi3/MCi4 (MobileCLIP2-S3/S4) are not supported")));
        };
        if depths.len() <= stage {
            depths.resize(stage + 1, 0);
        }
        if parts.next() == Some("blocks") {
            if let Some(block) = parts.next().and_then(|b| b.parse::<usize>().ok()) {
                depths[stage] = depths[stage].max(block + 1);
            }
        }
    }
    if let Some(empty) = depths.iter().position(|&d| d == 0) {
        return Err(bad(format!(
            "stage {empty} of the image tower has no blocks"
        )));
    }
    Ok(depths)
}

/// The fused tensors ([`super::names`]) of a tower in open_clip's training form or timm's
/// reparameterised form. Every tensor of `src` must be used.
pub fn fuse(src: StoredTensors) -> Result<StoredTensors, ModelError> {
    let depths = stage_depths(src.names().map(str::to_string))?;
    if !src.names().any(|n| n.contains(".reparam_conv.")) {
        check_training_names(&src, &depths)?;
    }
    let mut f = Fuser {
        src,
        out: Vec::new(),
    };
    let cands = |p: &str| {
        vec![
            format!("{p}.reparam_conv.weight"),
            format!("{p}.conv_kxk.0.conv.weight"),
        ]
    };
    let w = f.out_channels(&cands(&format!("{T}.stem.0")))?;
    let c_in = f.shape(
        &cands(&format!("{T}.stem.0"))
            .into_iter()
            .find(|n| f.src.contains(n))
            .expect("found above"),
        4,
    )?[1];
    let stem = [(c_in, 3), (1, 3), (w, 1)];
    for (i, (per_group, k)) in stem.into_iter().enumerate() {
        let conv = f.mobileone(&format!("{T}.stem.{i}"), w, per_group, k)?;
        f.put_conv(&format!("{T}.stem.{i}"), conv, i == 2);
    }
    let mut c = w;
    for (s, &depth) in depths.iter().enumerate() {
        let stage = format!("{T}.stages.{s}");
        let down = format!("{stage}.downsample.proj");
        if f.src.names().any(|n| n.starts_with(&format!("{down}."))) {
            let lk = format!("{down}.0");
            let c_out = f.out_channels(&[
                format!("{lk}.reparam_conv.weight"),
                format!("{lk}.large_conv.conv.weight"),
            ])?;
            if c_out % c != 0 {
                return Err(bad(format!(
                    "stage {s} is {c_out} wide, not a multiple of the {c} before it"
                )));
            }
            let k = match f.src.shape(&format!("{lk}.reparam_conv.weight")) {
                Some(sh) if sh.len() == 4 => sh[2],
                _ => f.shape(&format!("{lk}.large_conv.conv.weight"), 4)?[2],
            };
            let conv = match f.reparam(&lk, c_out, 1, k)? {
                Some(conv) => conv,
                None => {
                    let mut large = f.conv_bn(&format!("{lk}.large_conv"))?;
                    if f.src.contains(&format!("{lk}.small_conv.conv.weight")) {
                        let small = f.conv_bn(&format!("{lk}.small_conv"))?;
                        large.add(&small, &lk)?;
                    }
                    large
                }
            };
            if (conv.c_out, conv.per_group) != (c_out, 1) {
                return Err(bad(format!("{lk} is not a depthwise convolution")));
            }
            f.put_conv(&format!("{stage}.downsample.conv"), conv, false);
            if f.src.contains(&format!("{lk}.se.fc1.weight")) {
                f.se(
                    &format!("{lk}.se"),
                    &format!("{stage}.downsample.se"),
                    c_out,
                )?;
            }
            let pw = f.mobileone(&format!("{down}.1"), c_out, c_out, 1)?;
            f.put_conv(&format!("{stage}.downsample.pointwise"), pw, true);
            c = c_out;
        }
        let pos = format!("{stage}.pos_emb");
        if f.src.names().any(|n| n.starts_with(&format!("{pos}."))) {
            let k = f
                .out_channels(&[
                    format!("{pos}.reparam_conv.weight"),
                    format!("{pos}.pos_enc.weight"),
                ])
                .and_then(|_| {
                    let name = [
                        format!("{pos}.reparam_conv.weight"),
                        format!("{pos}.pos_enc.weight"),
                    ]
                    .into_iter()
                    .find(|n| f.src.contains(n))
                    .expect("found");
                    Ok(f.shape(&name, 4)?[2])
                })?;
            let conv = match f.reparam(&pos, c, 1, k)? {
                Some(fused) => Fuser::without_identity(fused),
                None => {
                    let (w, _) = f.f32(&format!("{pos}.pos_enc.weight"), &[c, 1, k, k])?;
                    let b = f.f32(&format!("{pos}.pos_enc.bias"), &[c])?.0;
                    Conv {
                        c_out: c,
                        per_group: 1,
                        k,
                        w,
                        b,
                        int8: false,
                    }
                }
            };
            f.put_conv(&format!("{stage}.pos_emb"), conv, false);
        }
        for b in 0..depth {
            let block = format!("{stage}.blocks.{b}");
            if f.src.contains(&format!("{block}.token_mixer.qkv.weight")) {
                if c % HEAD_DIM != 0 {
                    return Err(bad(format!("stage {s} is {c} wide, not a multiple of attention's {HEAD_DIM}-wide heads")));
                }
                f.attention(&block, &block, c)?;
            } else {
                f.repmixer(&block, &block, c)?;
            }
        }
    }
    let fin = format!("{T}.final_conv");
    let c_final = f.out_channels(&cands(&fin))?;
    if c_final % c != 0 {
        return Err(bad(format!(
            "the final convolution's {c_final} channels are not a multiple of {c}"
        )));
    }
    let conv = f.mobileone(&fin, c_final, 1, 3)?;
    f.put_conv(&fin, conv, false);
    if f.src.contains(&format!("{fin}.se.fc1.weight")) {
        f.se(&format!("{fin}.se"), &format!("{fin}.se"), c_final)?;
    }
    let embed = f.out_channels(&[format!("{T}.head.fc.weight")])?;
    let (w, q) = f.f32(&format!("{T}.head.fc.weight"), &[embed, c_final])?;
    let b = f.f32(&format!("{T}.head.fc.bias"), &[embed])?.0;
    f.put_weight(&format!("{T}.head.fc"), vec![embed, c_final], w, b, q);
    let Fuser { src, out } = f;
    src.finish()?;
    Ok(StoredTensors::from_tensors(out))
}
