//! The fused tower's layout: the `__metadata__` entry a weights file in it carries, and the
//! architecture's constants. Tensor names keep open_clip's prefix (`visual.trunk.`) and timm's
//! module paths where a module survives fusion whole; what fusion makes has its own name:
//!
//! - `stem.{0,1,2}`: the stem's three MobileOne blocks (3x3 stride 2 dense, 3x3 stride 2
//!   depthwise, 1x1), each `.weight` and `.bias`, GELU after each;
//! - `stages.{s}.downsample.conv` (the large-kernel depthwise convolution, stride 2, the small
//!   kernel inside), `.downsample.se.fc{1,2}` (if the stage has squeeze-excite), GELU,
//!   `.downsample.pointwise` (1x1), GELU;
//! - `stages.{s}.pos_emb`: the positional depthwise convolution, added to its input;
//! - `stages.{s}.blocks.{b}.mixer`: RepMixer's depthwise convolution, added to its input; or
//!   `.attn.qkv` (BatchNorm and q's scale folded in, with a bias) and `.attn.proj` (layer scale
//!   folded in), added to the block's input;
//! - `stages.{s}.blocks.{b}.mlp.conv` (depthwise 7x7), `.mlp.fc1` (1x1), GELU, `.mlp.fc2` (1x1,
//!   layer scale folded in), added to the MLP's input;
//! - `final_conv` (depthwise 3x3, two outputs a channel), `final_conv.se.fc{1,2}`, GELU;
//! - `head.fc`: the projection after the average over the pixels.

/// The `__metadata__` key naming a weights file's layout.
pub const LAYOUT_KEY: &str = "clipmatch.layout";
/// This layout's name (a later layout gets a new one; an older reader refuses it).
pub const LAYOUT: &str = "fastvit-fused/1";
/// Attention's head width (timm's `Attention` default, which FastViT-MCi keeps).
pub const HEAD_DIM: usize = 32;
/// FastViT-MCi0/1/2 have four stages (MCi3/4 have five, not supported).
pub const MAX_STAGES: usize = 4;
