//! `Seq2Seq`: the whole encoder-decoder model, from token ids to logits.
//!
//! input = embed[ids]·√d_model + P[position], then dropout; N encoder layers then `encoder.norm`;
//! N decoder layers (causal self-attention, cross-attention, feed-forward) then `decoder.norm`;
//! logits = h·Wᵀ + b, with W = `generator.weight`, or `embed.weight` when the output is tied.
//!
//! PyTorch equivalent: `torch.nn.Transformer(batch_first=True)` plus an `nn.Embedding` shared by
//! source and target and an output `nn.Linear`, with the same parameter names.

use crate::config::{ModelConfig, Positional};
use crate::data::PAD;
use crate::nn::{Ctx, DecoderLayer, Dropout, Embedding, EncoderLayer, LayerNorm, causal_mask, sinusoidal_table};
use autograd::{Element, Param, ParamStore, Tape, Tensor, Var};
use rand::Rng;

/// The encoder-decoder Transformer.
pub struct Seq2Seq<T: Element = f32> {
    /// The hyperparameters.
    pub cfg: ModelConfig,
    /// `embed.weight` `[vocab, d]`: token vectors for source and target.
    pub embed: Embedding<T>,
    /// `pos_embed.weight` `[max_len, d]` when positions are learned.
    pub pos_embed: Option<Embedding<T>>,
    /// `encoder.layers.{i}`.
    pub encoder_layers: Vec<EncoderLayer<T>>,
    /// `encoder.norm`.
    pub encoder_norm: LayerNorm<T>,
    /// `decoder.layers.{i}`.
    pub decoder_layers: Vec<DecoderLayer<T>>,
    /// `decoder.norm`.
    pub decoder_norm: LayerNorm<T>,
    /// `generator.weight` `[vocab, d]`, absent when the output is tied to the embedding.
    pub generator_weight: Option<Param<T>>,
    /// `generator.bias` `[vocab]`.
    pub generator_bias: Param<T>,
    positions: Option<Tensor<T>>,
    dropout: Dropout,
}

/// What the encoder hands the decoder: its output and the source padding mask.
pub struct Encoded<'t, T: Element> {
    /// `(batch, s, d)`.
    pub memory: Var<'t, T>,
    /// `(batch, 1, 1, s)`: 1 at padding.
    pub src_mask: Tensor<T>,
}

impl<T: Element> Seq2Seq<T> {
    /// A freshly initialized model whose parameters are added to `store` under PyTorch's names.
    ///
    /// # Panics
    /// If the config is invalid (see [`ModelConfig::validate`]).
    pub fn new(cfg: &ModelConfig, store: &mut ParamStore<T>, rng: &mut impl Rng) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("Seq2Seq::new: {e}");
        }
        let d = cfg.d_model;
        // N(0, 1/d): after the √d scaling the embeddings have unit size.
        let embed = Embedding {
            weight: store.prefix("embed").param(
                "weight",
                Tensor::randn([cfg.vocab_size, d], T::ZERO, T::from_f64(1.0 / (d as f64).sqrt()), rng),
            ),
        };
        let pos_embed = (cfg.positional == Positional::Learned)
            .then(|| Embedding::new(cfg.max_len, d, store.prefix("pos_embed"), rng));
        let encoder_layers = (0..cfg.n_encoder_layers)
            .map(|i| EncoderLayer::new(cfg, store.prefix("encoder").prefix(&format!("layers.{i}")), rng))
            .collect();
        let encoder_norm = LayerNorm::new(d, cfg.layer_norm_eps, store.prefix("encoder").prefix("norm"));
        let decoder_layers = (0..cfg.n_decoder_layers)
            .map(|i| DecoderLayer::new(cfg, store.prefix("decoder").prefix(&format!("layers.{i}")), rng))
            .collect();
        let decoder_norm = LayerNorm::new(d, cfg.layer_norm_eps, store.prefix("decoder").prefix("norm"));
        let bound = T::from_f64(1.0 / (d as f64).sqrt());
        let mut generator = store.prefix("generator");
        let generator_weight = (!cfg.tie_output)
            .then(|| generator.param("weight", Tensor::rand_uniform([cfg.vocab_size, d], -bound, bound, rng)));
        let generator_bias = generator.param("bias", Tensor::rand_uniform([cfg.vocab_size], -bound, bound, rng));
        Seq2Seq {
            cfg: cfg.clone(),
            embed,
            pos_embed,
            encoder_layers,
            encoder_norm,
            decoder_layers,
            decoder_norm,
            generator_weight,
            generator_bias,
            positions: (cfg.positional == Positional::Sinusoidal).then(|| sinusoidal_table(cfg.max_len, d)),
            dropout: Dropout { p: cfg.dropout },
        }
    }

    /// Token ids `(batch, len)` → scaled embeddings plus positions, then dropout: `(batch, len, d)`.
    #[track_caller]
    fn embed_tokens<'t>(
        &self,
        tape: &'t Tape<T>,
        ids: &[usize],
        [batch, len]: [usize; 2],
        ctx: &mut Ctx,
    ) -> Var<'t, T> {
        let d = self.cfg.d_model;
        assert!(
            len <= self.cfg.max_len,
            "Seq2Seq: sequence of {len} tokens is longer than max_len = {}",
            self.cfg.max_len
        );
        let mut x = self.embed.forward(tape, ids, [batch, len]); // (batch, len, d)
        if self.cfg.scale_embeddings {
            x = x.mul_scalar(T::from_f64((d as f64).sqrt()));
        }
        let p = match (&self.positions, &self.pos_embed) {
            (Some(table), _) => tape.constant(table.narrow(0, 0, len)), // (len, d)
            (None, Some(learned)) => tape.param(&learned.weight).narrow(0, 0, len), // (len, d)
            (None, None) => unreachable!("positions are sinusoidal or learned"),
        };
        self.dropout.forward(x + p, ctx)
    }

    /// Runs the encoder on source ids `(batch, s)`.
    #[track_caller]
    pub fn encode<'t>(&self, tape: &'t Tape<T>, src: &[usize], shape: [usize; 2], ctx: &mut Ctx) -> Encoded<'t, T> {
        let [batch, s] = shape;
        let src_mask = Tensor::from_fn([batch, 1, 1, s], |i| if src[i] == PAD { T::ONE } else { T::ZERO });
        let mut x = self.embed_tokens(tape, src, shape, ctx); // (batch, s, d)
        for layer in &self.encoder_layers {
            x = layer.forward(tape, x, &src_mask, ctx);
        }
        Encoded { memory: self.encoder_norm.forward(tape, x), src_mask }
    }

    /// Runs the decoder on target inputs `(batch, t)` (starting with `<bos>`) over an encoded
    /// source, giving logits `(batch, t, vocab)`.
    #[track_caller]
    pub fn decode<'t>(
        &self,
        tape: &'t Tape<T>,
        enc: &Encoded<'t, T>,
        tgt_in: &[usize],
        shape: [usize; 2],
        ctx: &mut Ctx,
    ) -> Var<'t, T> {
        let [batch, t] = shape;
        // Causal, and blind to padding keys: (batch, 1, t, t).
        let causal = causal_mask::<T>(t);
        let pad = Tensor::from_fn([batch, 1, 1, t], |i| if tgt_in[i] == PAD { T::ONE } else { T::ZERO });
        let tgt_mask = causal.zip_map(&pad, |c, p| if c != T::ZERO || p != T::ZERO { T::ONE } else { T::ZERO });
        let mut x = self.embed_tokens(tape, tgt_in, shape, ctx); // (batch, t, d)
        for layer in &self.decoder_layers {
            x = layer.forward(tape, x, enc.memory, &tgt_mask, &enc.src_mask, ctx);
        }
        let h = self.decoder_norm.forward(tape, x); // (batch, t, d)
        let w = match &self.generator_weight {
            Some(w) => tape.param(w),
            None => tape.param(&self.embed.weight),
        };
        h.matmul_t(w, false, true) + tape.param(&self.generator_bias) // (batch, t, vocab)
    }

    /// Source ids `(batch, s)` and target inputs `(batch, t)` → logits `(batch, t, vocab)`.
    #[track_caller]
    pub fn forward<'t>(
        &self,
        tape: &'t Tape<T>,
        src: &[usize],
        src_shape: [usize; 2],
        tgt_in: &[usize],
        tgt_shape: [usize; 2],
        ctx: &mut Ctx,
    ) -> Var<'t, T> {
        let enc = self.encode(tape, src, src_shape, ctx);
        self.decode(tape, &enc, tgt_in, tgt_shape, ctx)
    }
}
