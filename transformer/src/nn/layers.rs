//! `EncoderLayer` and `DecoderLayer`: attention and feed-forward sub-layers with residual
//! connections and layer norms, after each sub-layer (the paper) or before (`norm_first`).
//!
//! Post-LN: x = norm(x + dropout(sublayer(x))). Pre-LN: x = x + dropout(sublayer(norm(x))).
//! PyTorch equivalent: `torch.nn.TransformerEncoderLayer` / `TransformerDecoderLayer` with
//! `batch_first=True`, same parameter names.

use super::{Ctx, Dropout, FeedForward, KvCache, LayerNorm, MultiHeadAttention};
use crate::config::Activation;
use autograd::{Element, ParamPath, Tensor, Var};
use rand::Rng;

/// The shape of one encoder or decoder layer: what `torch.nn.TransformerEncoderLayer` takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerConfig {
    /// Width of every position's vector.
    pub d_model: usize,
    /// Attention heads; each sees d_model / n_heads features.
    pub n_heads: usize,
    /// Width of the feed-forward block's hidden layer.
    pub d_ff: usize,
    /// Dropout after attention weights, inside the feed-forward block and on each sub-layer.
    pub dropout: f64,
    /// The feed-forward block's nonlinearity.
    pub activation: Activation,
    /// Layer norm before each sub-layer (pre-LN) instead of after the residual sum (post-LN).
    pub norm_first: bool,
    /// ε of the layer norms.
    pub layer_norm_eps: f64,
}

/// Self-attention then feed-forward.
pub struct EncoderLayer<T: Element = f32> {
    /// Attention over the source.
    pub self_attn: MultiHeadAttention<T>,
    /// The position-wise feed-forward block.
    pub ff: FeedForward<T>,
    /// Around self-attention.
    pub norm1: LayerNorm<T>,
    /// Around the feed-forward block.
    pub norm2: LayerNorm<T>,
    residual: Residual,
}

crate::nn::impl_module!(EncoderLayer { module self_attn, module ff, module norm1, module norm2 });

impl<T: Element> EncoderLayer<T> {
    /// A layer with parameters under `path` (`self_attn.*`, `linear1.*`, `linear2.*`, `norm1.*`, `norm2.*`).
    pub fn new(cfg: &LayerConfig, mut path: ParamPath<'_, T>, rng: &mut impl Rng) -> Self {
        let self_attn = MultiHeadAttention::new(cfg.d_model, cfg.n_heads, cfg.dropout, path.prefix("self_attn"), rng);
        let ff = FeedForward::new(cfg.d_model, cfg.d_ff, cfg.activation, cfg.dropout, &mut path, rng);
        EncoderLayer {
            self_attn,
            ff,
            norm1: LayerNorm::new(cfg.d_model, cfg.layer_norm_eps, path.prefix("norm1")),
            norm2: LayerNorm::new(cfg.d_model, cfg.layer_norm_eps, path.prefix("norm2")),
            residual: Residual { dropout: Dropout { p: cfg.dropout }, norm_first: cfg.norm_first },
        }
    }

    /// `(batch, s, d) → (batch, s, d)`; `src_mask` hides padding keys.
    #[track_caller]
    pub fn forward<'t>(&self, x: Var<'t, T>, src_mask: &Tensor<T>, ctx: &mut Ctx) -> Var<'t, T> {
        let x = self.residual.apply(x, &self.norm1, ctx, |h, ctx| self.self_attn.forward(h, h, Some(src_mask), ctx));
        self.residual.apply(x, &self.norm2, ctx, |h, ctx| self.ff.forward(h, ctx))
    }

    /// The same layer for new positions `x` `(batch, t_new, d)` that attend to every earlier
    /// position as well: their keys and values join `cache`, which holds those of the earlier
    /// ones. `mask` is `(batch, 1, t_new, t_cached + t_new)`, causal when `t_new > 1`; one new
    /// position may pass `None`. Gives, for the new
    /// positions, exactly the values [`EncoderLayer::forward`] gives on the whole sequence with
    /// a causal mask.
    #[track_caller]
    pub fn forward_cached<'t>(
        &self,
        x: Var<'t, T>,
        cache: &mut KvCache<T>,
        mask: Option<&Tensor<T>>,
        ctx: &mut Ctx,
    ) -> Var<'t, T> {
        let x =
            self.residual.apply(x, &self.norm1, ctx, |h, ctx| self.self_attn.forward_cached(h, None, cache, mask, ctx));
        self.residual.apply(x, &self.norm2, ctx, |h, ctx| self.ff.forward(h, ctx))
    }
}

/// What a decoder layer keeps between decoding steps: its self-attention's keys and values so
/// far, and its cross-attention's keys and values of the encoder output, computed once.
#[derive(Clone, Debug)]
pub struct DecoderCache<T: Element> {
    /// Self-attention: one entry per position decoded so far.
    pub self_attn: KvCache<T>,
    /// Cross-attention: the encoder memory's keys and values.
    pub cross_attn: KvCache<T>,
}

impl<T: Element> Default for DecoderCache<T> {
    fn default() -> Self {
        DecoderCache { self_attn: KvCache::new(), cross_attn: KvCache::new() }
    }
}

impl<T: Element> DecoderCache<T> {
    /// Keeps only the batch rows `rows`, in that order (beam search reorders hypotheses).
    pub fn select_rows(&mut self, rows: &[usize]) {
        self.self_attn.select_rows(rows);
        self.cross_attn.select_rows(rows);
    }
}

/// Masked self-attention, cross-attention over the encoder's output, then feed-forward.
pub struct DecoderLayer<T: Element = f32> {
    /// Causal attention over the target so far.
    pub self_attn: MultiHeadAttention<T>,
    /// Attention over the encoder's output.
    pub cross_attn: MultiHeadAttention<T>,
    /// The position-wise feed-forward block.
    pub ff: FeedForward<T>,
    /// Around self-attention.
    pub norm1: LayerNorm<T>,
    /// Around cross-attention.
    pub norm2: LayerNorm<T>,
    /// Around the feed-forward block.
    pub norm3: LayerNorm<T>,
    residual: Residual,
}

crate::nn::impl_module!(DecoderLayer { module self_attn, module cross_attn, module ff, module norm1, module norm2, module norm3 });

impl<T: Element> DecoderLayer<T> {
    /// A layer with parameters under `path` (`self_attn.*`, `multihead_attn.*`, `linear1.*`,
    /// `linear2.*`, `norm1.*`, `norm2.*`, `norm3.*`).
    pub fn new(cfg: &LayerConfig, mut path: ParamPath<'_, T>, rng: &mut impl Rng) -> Self {
        let (d, h, p) = (cfg.d_model, cfg.n_heads, cfg.dropout);
        let self_attn = MultiHeadAttention::new(d, h, p, path.prefix("self_attn"), rng);
        let cross_attn = MultiHeadAttention::new(d, h, p, path.prefix("multihead_attn"), rng);
        let ff = FeedForward::new(d, cfg.d_ff, cfg.activation, p, &mut path, rng);
        DecoderLayer {
            self_attn,
            cross_attn,
            ff,
            norm1: LayerNorm::new(d, cfg.layer_norm_eps, path.prefix("norm1")),
            norm2: LayerNorm::new(d, cfg.layer_norm_eps, path.prefix("norm2")),
            norm3: LayerNorm::new(d, cfg.layer_norm_eps, path.prefix("norm3")),
            residual: Residual { dropout: Dropout { p }, norm_first: cfg.norm_first },
        }
    }

    // ANCHOR: decoder_forward
    /// `(batch, t, d) → (batch, t, d)` given the encoder output `memory` `(batch, s, d)`.
    #[track_caller]
    pub fn forward<'t>(
        &self,
        x: Var<'t, T>,
        memory: Var<'t, T>,
        tgt_mask: &Tensor<T>,
        memory_mask: &Tensor<T>,
        ctx: &mut Ctx,
    ) -> Var<'t, T> {
        let x = self.residual.apply(x, &self.norm1, ctx, |h, ctx| self.self_attn.forward(h, h, Some(tgt_mask), ctx));
        let x = self
            .residual
            .apply(x, &self.norm2, ctx, |h, ctx| self.cross_attn.forward(h, memory, Some(memory_mask), ctx));
        self.residual.apply(x, &self.norm3, ctx, |h, ctx| self.ff.forward(h, ctx))
    }
    // ANCHOR_END: decoder_forward

    /// The same layer for new target positions `x` `(batch, t_new, d)`, with the keys and
    /// values of earlier positions and of `memory` taken from `cache` (and the new ones added).
    /// `tgt_mask`, if any, is `(batch, 1, t_new, t_cached + t_new)`.
    #[track_caller]
    pub fn forward_cached<'t>(
        &self,
        x: Var<'t, T>,
        memory: Var<'t, T>,
        cache: &mut DecoderCache<T>,
        tgt_mask: Option<&Tensor<T>>,
        memory_mask: &Tensor<T>,
        ctx: &mut Ctx,
    ) -> Var<'t, T> {
        let x = self.residual.apply(x, &self.norm1, ctx, |h, ctx| {
            self.self_attn.forward_cached(h, None, &mut cache.self_attn, tgt_mask, ctx)
        });
        let x = self.residual.apply(x, &self.norm2, ctx, |h, ctx| {
            self.cross_attn.forward_cached(h, Some(memory), &mut cache.cross_attn, Some(memory_mask), ctx)
        });
        self.residual.apply(x, &self.norm3, ctx, |h, ctx| self.ff.forward(h, ctx))
    }
}

// ANCHOR: residual
/// A residual connection around a sub-layer, with the layer norm before the sub-layer (pre-LN)
/// or after the sum (post-LN, the paper's): the one place the two orders are written.
#[derive(Clone, Copy, Debug)]
struct Residual {
    dropout: Dropout,
    norm_first: bool,
}

impl Residual {
    /// Pre-LN: x + dropout(f(norm(x))). Post-LN: norm(x + dropout(f(x))).
    #[track_caller]
    fn apply<'t, T: Element>(
        self,
        x: Var<'t, T>,
        norm: &LayerNorm<T>,
        ctx: &mut Ctx,
        sublayer: impl FnOnce(Var<'t, T>, &mut Ctx) -> Var<'t, T>,
    ) -> Var<'t, T> {
        if self.norm_first {
            let y = sublayer(norm.forward(x), ctx);
            x + self.dropout.forward(y, ctx)
        } else {
            let y = sublayer(x, ctx);
            norm.forward(x + self.dropout.forward(y, ctx))
        }
    }
}
// ANCHOR_END: residual
