"""Where the CNN U-Net's training step time goes on CPU: convolution gradients ablated.

    python benchmarks/cnn_train_ablation.py [--model cnn_unet] [--genes 2048] [--batch 32]
        [--repeats 5] [--variants xla,free_weight_grad,free_conv_grads]
        [--json runs/bench/cnn_train_ablation.json]

Times the gradient step `jax.jit(jax.grad(loss))` of the denoiser `build_model(--model,
num_classes=26)` (cnn_unet, or mlp_cnn, which holds a CNN U-Net) at features [genes, 8]:
x ~ N(0, 1) [B, G, 8], t = linspace(0, 0.9, B), y = arange(B) % 26, train=True (dropout on),
loss = mean(denoiser output ** 2). Compile (lower + compile) apart, one untimed warm-up call, then
the median of --repeats steps, each blocked with `jax.block_until_ready`; FLOPs a step from the
compiled executable's cost analysis. Variants, each measured in its own child process (no shared
compile caches or allocators between them):

- xla: the model as it is.
- free_weight_grad: every `nn.Conv` of genodiff_jax/models/cnn_unet.py swapped for a conv with the
  same parameters whose `jax.custom_vjp` returns the true input gradient but, as weight gradient,
  `zeros_like(w) + dy[0, 0, 0]` (cheap, yet still depending on dy, so XLA keeps the upstream
  backward). The bias is added outside the custom conv and keeps its true gradient.
- free_conv_grads: as free_weight_grad, and the input gradient a cheap stand-in of the right shape
  that depends on dy: `broadcast_to(dy.mean(-1, keepdims=True), x.shape) * w[0, 0, 0]`. (Zeros
  would let XLA delete the whole backward upstream of the conv.)

Differences to "xla" estimate what the convolutions' weight and input gradients cost in the step.
Each child checks, once, that nothing is patched for "xla" and, for the others, that the patched
model's forward output equals the unpatched one on the same (randomised) parameters (compiling
init and the checks adds about a minute a variant on 2 CPU cores). --genes must be divisible by 128
(the U-Net halves the length 7 times); 128 or 256 with a small batch makes a quick smoke test.
Prints a table; --json writes {"command", "machine", "settings", "results"}.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
import types

VARIANTS = ("xla", "free_weight_grad", "free_conv_grads")
MODELS = ("cnn_unet", "mlp_cnn")  # the registered denoisers with a CNN U-Net inside
COMPONENTS = 8
CLASSES = 26
RESULT_PREFIX = "ABLATION_RESULT "  # marks the child's JSON line on its stdout


# -- the stand-in convolution (child process) ------------------------------------------------------

def _conv_with_cheap_grads(variant: str):
    """`conv(x [B, L, Cin], w [k, Cin, F])`, flax's 1-D "SAME" conv, with the variant's VJP."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    def conv(x, w):  # the call flax's nn.Conv makes for 1-D, stride 1, "SAME", no dilation
        return lax.conv_general_dilated(x, w, (1,), "SAME", lhs_dilation=(1,), rhs_dilation=(1,),
                                        dimension_numbers=("NHC", "HIO", "NHC"))

    @jax.custom_vjp
    def f(x, w):
        return conv(x, w)

    def fwd(x, w):
        return conv(x, w), (x, w)

    def bwd(res, dy):
        x, w = res
        if variant == "free_conv_grads":
            dx = jnp.broadcast_to(dy.mean(-1, keepdims=True), x.shape) * w[0, 0, 0]
        else:  # the true input gradient; jax.vjp in x only, so no weight gradient is computed
            _, vjp = jax.vjp(lambda x_: conv(x_, w), x)
            (dx,) = vjp(dy)
        dw = jnp.zeros_like(w) + dy[0, 0, 0].astype(w.dtype)  # cheap, but depends on dy
        return dx.astype(x.dtype), dw

    f.defvjp(fwd, bwd)
    return f


def _patched_nn(variant: str) -> tuple[types.SimpleNamespace, list[int]]:
    """A stand-in for `flax.linen` whose `Conv` has the variant's gradients; a call counter."""
    import flax.linen as nn
    import jax.numpy as jnp
    from flax.linen.dtypes import promote_dtype
    from flax.typing import Dtype, Initializer

    conv_fn = _conv_with_cheap_grads(variant)
    calls = [0]

    class Conv(nn.Module):
        """flax's nn.Conv for 1-D channels-last inputs: "kernel" [k, Cin, F], "bias" [F]."""

        features: int
        kernel_size: tuple[int, ...]
        dtype: Dtype | None = None
        param_dtype: Dtype = jnp.float32
        kernel_init: Initializer = nn.linear.default_kernel_init
        bias_init: Initializer = nn.initializers.zeros_init()

        @nn.compact
        def __call__(self, x):
            (k,) = tuple(self.kernel_size)
            if k % 2 != 1 or x.ndim != 3:
                raise ValueError(
                    f"stand-in Conv: odd kernel, [B, L, C] input only ({k}, {x.shape})"
                )
            calls[0] += 1
            kernel = self.param("kernel", self.kernel_init, (k, x.shape[-1], self.features),
                                self.param_dtype)
            bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
            return conv_fn(x, kernel) + bias.reshape(1, 1, -1)

    names = {n: getattr(nn, n) for n in dir(nn) if not n.startswith("__")}
    return types.SimpleNamespace(**{**names, "Conv": Conv}), calls


# -- one variant (child process) -------------------------------------------------------------------

def _measure(variant: str, model_name: str, genes: int, batch: int, repeats: int) -> dict:
    import flax.linen
    import jax
    import jax.numpy as jnp
    import numpy as np

    from genodiff_jax.bench import flops_per_device
    from genodiff_jax.models import build_model, cnn_unet

    start = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{variant} {time.perf_counter() - start:5.0f} s] {msg}", file=sys.stderr,
              flush=True)

    model = build_model(model_name, num_classes=CLASSES)
    key = jax.random.key(0)
    kx, kp, kd = jax.random.split(key, 3)
    x = jax.random.normal(kx, (batch, genes, COMPONENTS), jnp.float32)
    t = jnp.linspace(0.0, 0.9, batch, dtype=jnp.float32)
    y = jnp.arange(batch, dtype=jnp.int32) % CLASSES

    if cnn_unet.nn is not flax.linen:
        raise SystemExit("cnn_unet.nn is already patched")

    def make_init():  # a fresh function each call: jit would reuse a trace made before the patch
        return jax.jit(
            lambda k, x, t, y: model.init({"params": k, "dropout": k}, x, t, y)["params"])

    def forward(p):  # the same, on the first two rows, train=False
        fn = jax.jit(lambda p, x, t, y: model.apply({"params": p}, x, t, y, train=False))
        return np.asarray(fn(p, x[:2], t[:2], y[:2]))

    params = make_init()(kp, x[:1], t[:1], y[:1])
    say("initialised")
    check: dict = {"patched": variant != "xla"}
    if variant == "xla":
        say("nothing patched")
    else:
        # The check runs on parameters with every leaf randomised: with the zero-initialised
        # output convs the model's output would equal its input whatever the conv computes.
        leaves, treedef = jax.tree.flatten(params)
        noise = jax.random.split(jax.random.key(1), len(leaves))
        check_params = treedef.unflatten(
            [p + 0.05 * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, noise)])
        reference = forward(check_params)
        stand_in, calls = _patched_nn(variant)
        cnn_unet.nn = stand_in
        shapes = jax.eval_shape(make_init(), kp, x[:1], t[:1], y[:1])
        same_tree = jax.tree.structure(shapes) == jax.tree.structure(params) and all(
            a.shape == b.shape and a.dtype == b.dtype
            for a, b in zip(jax.tree.leaves(shapes), jax.tree.leaves(params)))
        if not same_tree:
            raise SystemExit(f"{variant}: the stand-in Conv changes the parameter tree")
        calls[0] = 0
        patched = forward(check_params)
        max_abs = float(np.max(np.abs(patched - reference)))
        scale = float(np.max(np.abs(reference)))
        if calls[0] == 0 or not np.allclose(patched, reference, rtol=1e-5,
                                            atol=1e-5 * max(scale, 1.0)):
            raise SystemExit(f"{variant}: the patched forward differs from the model's "
                             f"({calls[0]} convs replaced, max |diff| {max_abs:.3g}, "
                             f"max |out| {scale:.3g})")
        check.update(convs_replaced=calls[0], forward_max_abs_diff=max_abs)
        say(f"{calls[0]} convs replaced; forward output matches (max |diff| {max_abs:.2g})")
        del check_params

    def loss(p, x, t, y, key):
        out = model.apply({"params": p}, x, t, y, train=True, rngs={"dropout": key})
        return jnp.mean(out.astype(jnp.float32) ** 2)

    step = jax.jit(jax.grad(loss))
    t0 = time.perf_counter()
    compiled = step.lower(params, x, t, y, kd).compile()
    compile_s = time.perf_counter() - t0
    say(f"compiled in {compile_s:.1f} s")
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(params, x, t, y, kd))  # warm-up
    first_call_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(params, x, t, y, kd))
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    say(f"{median:.3f} s a step (median of {repeats})")
    return {"variant": variant, "seconds_per_step": median, "times_s": times,
            "compile_s": compile_s, "first_call_s": first_call_s,
            "flops_per_step": flops_per_device(compiled), "check": check}


# -- the parent ---------------------------------------------------------------------------------

def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn_unet", help=f"one of {', '.join(MODELS)}")
    parser.add_argument("--genes", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps a variant")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one variant
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    prog = "cnn_train_ablation.py: error:"
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown or not args.variants:
        sys.exit(f"{prog} unknown variant {', '.join(unknown) or '(none)'}; "
                 f"known: {', '.join(VARIANTS)}")
    if len(set(args.variants)) != len(args.variants):
        sys.exit(f"{prog} --variants names a variant twice")
    if args.model not in MODELS:
        sys.exit(f"{prog} unknown --model {args.model!r}; known: {', '.join(MODELS)}")
    for name in ("genes", "batch", "repeats"):
        if getattr(args, name) < 1:
            sys.exit(f"{prog} --{name} must be >= 1, got {getattr(args, name)}")
    if args.child is not None and args.child not in VARIANTS:
        sys.exit(f"{prog} unknown variant {args.child!r}")
    return args


def _num_params(model_name: str, genes: int) -> int:
    """Parameters at [genes, 8] (a shape-only trace); exits with one line when the shape is bad."""
    from genodiff_jax.models import build_model, count_params

    try:
        return count_params(build_model(model_name, num_classes=CLASSES), genes, COMPONENTS)
    except ValueError as e:
        sys.exit(f"cnn_train_ablation.py: error: {e}")


def _run_child(variant: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", variant, "--model", args.model,
           "--genes", str(args.genes), "--batch", str(args.batch), "--repeats", str(args.repeats)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # stderr: progress, passed on
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        sys.exit(f"cnn_train_ablation.py: error: variant {variant} failed "
                 f"(exit status {proc.returncode})")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def _table(results: list[dict]) -> str:
    base = next((r["seconds_per_step"] for r in results if r["variant"] == "xla"), None)
    rows = [f"{'variant':<18} {'s/step':>8} {'vs xla':>8} {'compile s':>10} {'GFLOP/step':>11}"]
    for r in results:
        diff = "" if base is None else f"{r['seconds_per_step'] - base:+.3f}"
        flops = r.get("flops_per_step")
        rows.append(f"{r['variant']:<18} {r['seconds_per_step']:>8.3f} {diff:>8} "
                    f"{r['compile_s']:>10.1f} "
                    f"{'-' if flops is None else f'{flops / 1e9:.1f}':>11}")
    by = {r["variant"]: r["seconds_per_step"] for r in results}
    notes = (("xla", "free_weight_grad", "conv weight gradients"),
             ("free_weight_grad", "free_conv_grads", "conv input gradients"),
             ("xla", "free_conv_grads", "conv weight + input gradients"))
    for full, cheap, what in notes:
        if full in by and cheap in by:
            of = f" of the {by['xla']:.3f} s step" if "xla" in by else ""
            rows.append(f"{what} ~{by[full] - by[cheap]:.3f} s{of} ({full} - {cheap})")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.child is not None:
        result = _measure(args.child, args.model, args.genes, args.batch, args.repeats)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0

    from genodiff_jax.atomic import atomic_file
    from genodiff_jax.bench import machine_info

    num_params = _num_params(args.model, args.genes)
    command = shlex.join(["python", "benchmarks/cnn_train_ablation.py",
                          *(sys.argv[1:] if argv is None else argv)])
    print(f"{args.model}, {num_params / 1e6:.1f} M params, features [{args.genes}, {COMPONENTS}], "
          f"batch {args.batch}, median of {args.repeats} steps, one process a variant",
          flush=True)
    results = [_run_child(v, args) for v in args.variants]
    out = {
        "command": command,
        "machine": machine_info(),
        "settings": {"model": args.model, "params": num_params,
                     "feature_shape": [args.genes, COMPONENTS], "batch": args.batch,
                     "classes": CLASSES, "dtype": "float32", "repeats": args.repeats,
                     "warmup": 1, "variants": args.variants, "dropout": "train=True"},
        "results": results,
    }
    print(_table(results))
    if args.json:
        with atomic_file(args.json) as tmp:
            tmp.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
