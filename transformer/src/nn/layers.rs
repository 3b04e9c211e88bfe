//! `EncoderLayer` and `DecoderLayer`: attention and feed-forward sub-layers with residual
//! connections and layer norms, after each sub-layer (the paper) or before (`norm_first`).
//!
//! Post-LN: x = norm(x + dropout(sublayer(x))). Pre-LN: x = x + dropout(sublayer(norm(x))).
//! PyTorch equivalent: `torch.nn.TransformerEncoderLayer` / `TransformerDecoderLayer` with
//! `batch_first=True`, same parameter names.

use super::{Ctx, Dropout, FeedForward, LayerNorm, MultiHeadAttention};
use crate::config::ModelConfig;
use autograd::{Element, ParamPath, Tape, Tensor, Var};
use rand::Rng;

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

impl<T: Element> EncoderLayer<T> {
    /// A layer with parameters under `path` (`self_attn.*`, `linear1.*`, `linear2.*`, `norm1.*`, `norm2.*`).
    pub fn new(cfg: &ModelConfig, mut path: ParamPath<'_, T>, rng: &mut impl Rng) -> Self {
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
    pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>, src_mask: &Tensor<T>, ctx: &mut Ctx) -> Var<'t, T> {
        let x = self
            .residual
            .apply(tape, x, &self.norm1, ctx, |h, ctx| self.self_attn.forward(tape, h, h, Some(src_mask), ctx));
        self.residual.apply(tape, x, &self.norm2, ctx, |h, ctx| self.ff.forward(tape, h, ctx))
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

impl<T: Element> DecoderLayer<T> {
    /// A layer with parameters under `path` (`self_attn.*`, `multihead_attn.*`, `linear1.*`,
    /// `linear2.*`, `norm1.*`, `norm2.*`, `norm3.*`).
    pub fn new(cfg: &ModelConfig, mut path: ParamPath<'_, T>, rng: &mut impl Rng) -> Self {
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

    /// `(batch, t, d) → (batch, t, d)` given the encoder output `memory` `(batch, s, d)`.
    #[track_caller]
    pub fn forward<'t>(
        &self,
        tape: &'t Tape<T>,
        x: Var<'t, T>,
        memory: Var<'t, T>,
        tgt_mask: &Tensor<T>,
        memory_mask: &Tensor<T>,
        ctx: &mut Ctx,
    ) -> Var<'t, T> {
        let x = self
            .residual
            .apply(tape, x, &self.norm1, ctx, |h, ctx| self.self_attn.forward(tape, h, h, Some(tgt_mask), ctx));
        let x = self.residual.apply(tape, x, &self.norm2, ctx, |h, ctx| {
            self.cross_attn.forward(tape, h, memory, Some(memory_mask), ctx)
        });
        self.residual.apply(tape, x, &self.norm3, ctx, |h, ctx| self.ff.forward(tape, h, ctx))
    }
}

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
        tape: &'t Tape<T>,
        x: Var<'t, T>,
        norm: &LayerNorm<T>,
        ctx: &mut Ctx,
        sublayer: impl FnOnce(Var<'t, T>, &mut Ctx) -> Var<'t, T>,
    ) -> Var<'t, T> {
        if self.norm_first {
            let y = sublayer(norm.forward(tape, x), ctx);
            x + self.dropout.forward(y, ctx)
        } else {
            let y = sublayer(x, ctx);
            norm.forward(tape, x + self.dropout.forward(y, ctx))
        }
    }
}
