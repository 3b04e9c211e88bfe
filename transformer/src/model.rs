//! `Seq2Seq`: the whole encoder-decoder model, from token ids to logits.
//!
//! input = embed\[ids\]·√d_model + P\[position\], then dropout; N encoder layers then `encoder.norm`;
//! N decoder layers (causal self-attention, cross-attention, feed-forward) then `decoder.norm`;
//! logits = h·Wᵀ + b, with W = `generator.weight`, or `embed.weight` when the output is tied.
//!
//! PyTorch equivalent: `torch.nn.Transformer(batch_first=True)` plus an `nn.Embedding` shared by
//! source and target and an output `nn.Linear`, with the same parameter names.

use crate::config::{ModelConfig, Positional};
use crate::data::PAD;
use crate::nn::{
    Ctx, DecoderCache, DecoderLayer, Dropout, Embedding, EncoderLayer, LayerNorm, causal_mask, sinusoidal_table,
};
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

crate::nn::impl_module!(Seq2Seq {
    module embed,
    option_module pos_embed,
    modules encoder_layers,
    module encoder_norm,
    modules decoder_layers,
    module decoder_norm,
    option generator_weight,
    param generator_bias,
});

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
        let layer = cfg.layer();
        let encoder_layers = (0..cfg.n_encoder_layers)
            .map(|i| EncoderLayer::new(&layer, store.prefix("encoder").prefix(&format!("layers.{i}")), rng))
            .collect();
        let encoder_norm = LayerNorm::new(d, cfg.layer_norm_eps, store.prefix("encoder").prefix("norm"));
        let decoder_layers = (0..cfg.n_decoder_layers)
            .map(|i| DecoderLayer::new(&layer, store.prefix("decoder").prefix(&format!("layers.{i}")), rng))
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

    /// Token ids `(batch, len)` at positions `start..start + len` → scaled embeddings plus
    /// positions, then dropout: `(batch, len, d)`.
    #[track_caller]
    fn embed_tokens<'t>(
        &self,
        tape: &'t Tape<T>,
        ids: &[usize],
        [batch, len]: [usize; 2],
        start: usize,
        ctx: &mut Ctx,
    ) -> Var<'t, T> {
        let d = self.cfg.d_model;
        assert!(
            start + len <= self.cfg.max_len,
            "Seq2Seq: sequence of {} tokens is longer than max_len = {}",
            start + len,
            self.cfg.max_len
        );
        let mut x = self.embed.forward(tape, ids, [batch, len]); // (batch, len, d)
        if self.cfg.scale_embeddings {
            x = x * (d as f64).sqrt();
        }
        let p = match (&self.positions, &self.pos_embed) {
            (Some(table), _) => tape.constant(table.narrow(0, start, len)), // (len, d)
            (None, Some(learned)) => tape.param(&learned.weight).narrow(0, start, len), // (len, d)
            (None, None) => unreachable!("positions are sinusoidal or learned"),
        };
        self.dropout.forward(x + p, ctx)
    }

    // ANCHOR: encode_decode
    /// Runs the encoder on source ids `(batch, s)`.
    #[track_caller]
    pub fn encode<'t>(&self, tape: &'t Tape<T>, src: &[usize], shape: [usize; 2], ctx: &mut Ctx) -> Encoded<'t, T> {
        let [batch, s] = shape;
        let src_mask = Tensor::from_fn([batch, 1, 1, s], |i| if src[i] == PAD { T::ONE } else { T::ZERO });
        let mut x = self.embed_tokens(tape, src, shape, 0, ctx); // (batch, s, d)
        for layer in &self.encoder_layers {
            x = layer.forward(x, &src_mask, ctx);
        }
        Encoded { memory: self.encoder_norm.forward(x), src_mask }
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
        let mut x = self.embed_tokens(tape, tgt_in, shape, 0, ctx); // (batch, t, d)
        for layer in &self.decoder_layers {
            x = layer.forward(x, enc.memory, &tgt_mask, &enc.src_mask, ctx);
        }
        self.generate(x) // (batch, t, vocab)
    }
    // ANCHOR_END: encode_decode

    /// The decoder for the newest target positions only: `tgt` `(batch, t)` is the whole target
    /// so far, of which the positions not yet in `caches` (one [`DecoderCache`] per decoder
    /// layer, empty at the start) are run; their keys and values join the caches. Gives logits
    /// `(batch, t_new, vocab)` equal, to the bit, to the last `t_new` rows of
    /// [`Seq2Seq::decode`] on the whole target, with the same causal and padding masks.
    ///
    /// # Panics
    /// If `caches` does not hold one cache per decoder layer or already covers all of `tgt`.
    #[track_caller]
    #[allow(clippy::too_many_arguments)]
    pub fn decode_cached<'t>(
        &self,
        tape: &'t Tape<T>,
        enc: &Encoded<'t, T>,
        tgt: &[usize],
        [batch, t]: [usize; 2],
        caches: &mut [DecoderCache<T>],
        ctx: &mut Ctx,
    ) -> Var<'t, T> {
        assert_eq!(caches.len(), self.decoder_layers.len(), "Seq2Seq::decode_cached: one cache per decoder layer");
        let start = caches[0].self_attn.len();
        assert!(start < t, "Seq2Seq::decode_cached: the caches already hold all {t} positions");
        let t_new = t - start;
        let new: Vec<usize> = tgt.chunks(t).flat_map(|row| row[start..].iter().copied()).collect();
        // New position i (absolute start + i) sees keys up to start + i that are not padding.
        let mask = Tensor::from_fn([batch, 1, t_new, t], |k| {
            let (b, i, j) = (k / (t_new * t), (k / t) % t_new, k % t);
            if j > start + i || tgt[b * t + j] == PAD { T::ONE } else { T::ZERO }
        });
        let mut x = self.embed_tokens(tape, &new, [batch, t_new], start, ctx); // (batch, t_new, d)
        for (layer, cache) in self.decoder_layers.iter().zip(caches) {
            x = layer.forward_cached(x, enc.memory, cache, Some(&mask), &enc.src_mask, ctx);
        }
        self.generate(x) // (batch, t_new, vocab)
    }

    /// Empty caches, one per decoder layer, for [`Seq2Seq::decode_cached`].
    pub fn new_caches(&self) -> Vec<DecoderCache<T>> {
        (0..self.decoder_layers.len()).map(|_| DecoderCache::default()).collect()
    }

    /// The final decoder norm and the output layer: `(batch, t, d)` → `(batch, t, vocab)`.
    #[track_caller]
    fn generate<'t>(&self, x: Var<'t, T>) -> Var<'t, T> {
        let tape = x.tape();
        let h = self.decoder_norm.forward(x); // (batch, t, d)
        let w = tape.param(self.generator_weight.as_ref().unwrap_or(&self.embed.weight)); // (vocab, d)
        h.linear(w, Some(tape.param(&self.generator_bias))) // (batch, t, vocab)
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
