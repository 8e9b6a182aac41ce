"""One training step of mri_dino against DINOv2's own `SSLMetaArch` step, side by side in one run, at one config.

Both sides: the same ViT (patch 14, LayerScale 1e-5, DINOv2's drop path: 0.3 in every block), DINO + iBOT (shared
head) + KoLeo heads of DINOv2's sizes (65536 prototypes unless `--prototypes`), 2 global + 8 local crops, AdamW,
gradient clipping at 3 and the teacher's EMA, on the same batch of random images (`bench/train_speed.py`'s
`make_batch`: our multi-crop recipe and iBOT masks; DINOv2 gets the same crops and masks in its collate's keys). Each
side runs in its own process (its own allocator, its own peak memory); both make the batch from the same seed and the
run checks that the two are equal. Ours is `SSLModel`'s step as `bench/train_speed.py` runs it (a plain loop: the
learner's overhead is not in here, that bench prints it). DINOv2's is what its `train.py` does per iteration:
`forward_backward`, `clip_grad_norm_` per student module, `optimizer.step` over its fused parameter groups,
`update_teacher`; its model is built by `SSLMetaArch(cfg)` from its own `ssl_default_config.yaml` merged with the arch,
crops, heads and batch given here, and its teacher starts as a copy of its student. Both start from the same weights
(DINOv2's initial student loaded into ours), so the first step's losses are compared as a sanity row (same magnitude
expected; with `--drop-path 0` they agree to float precision; exact parity is the SSL model chapter's business).

Printed per side: img/s, step time (median of the timed steps), peak memory (CUDA: `max_memory_allocated`; CPU: peak
RSS of this process during that side's steps, sampled every 5 ms, and its rise over the start), MFU on CUDA (FLOPs of
one step from torch's FlopCounterMode over the GPU's dense bf16 peak, the table of `bench/train_speed.py`), the
ratio ours / DINOv2; then the data loader: samples/s of one worker (1 thread) of our default pipeline
(`MultiViewCrops` in the worker) and of `crops.on_device` (the worker only reads and collates: `DeviceCollate`), on
phantom slices from a real cache (`bench/augment_vs_monai.py`), against the samples/s each step consumes: the
workers needed to feed it.

Precision: CUDA runs bf16 on both sides (ours: autocast; DINOv2: its FSDP mixed-precision policy with param_dtype
bf16 and its reduce dtypes, grad scaler off: DINOv2's default is fp16 with a scaler, `--dinov2-fp16` keeps that).
On CUDA DINOv2 runs as its train.py runs it even on one GPU: a 1-process NCCL group and FSDP around every student and
teacher module (`prepare_for_distributed_training`), but only under the torch it pins (2.0): its FSDP helpers call
internals that later torch versions renamed (`_reshard(state, handles, ...)`, `FSDP.params`). Under a later torch, and
on the CPU (its FSDP wrapper takes a CUDA rank), DINOv2 runs unwrapped, printed loudly: gradient clipping and the
teacher EMA act on its plain modules (its own act on FSDP modules only) and, on CUDA, autocast in bf16 (fp16 with
`--dinov2-fp16`) stands in for the FSDP policy; on one GPU FSDP shards nothing anyway. Two more CPU shims, printed
too: the inputs' `.cuda()` returns them as they are, and, when xFormers is missing, each block runs every crop set
separately (what xFormers' block-diagonal mask computes) and the head's `BlockDiagonalMask.from_tensor_list` /
`split` are a concatenation and a split. With xFormers on CUDA, DINOv2's forward_backward runs unchanged. Nothing of
DINOv2 is in mri_dino: the bench imports it from the checkout given by `--dinov2`.

Baseline requirements (beside mri_dino's): a DINOv2 checkout (`git clone https://github.com/facebookresearch/dinov2`),
`pip install fvcore iopath omegaconf` (its training code imports them), and on CUDA `pip install xformers` matching
the installed torch (without it the crop-set shim above is used on the GPU too, and DINOv2's figures are not its own).

GPU commands (the figures of issue 18, item 4; 65536 prototypes, DINOv2's crop recipe 2 x 224 + 8 x 98, bf16):

    python bench/step_vs_dinov2.py --dinov2 ~/dinov2 --arch vit_small --batch 64 --steps 20 --warmup 5
    python bench/step_vs_dinov2.py --dinov2 ~/dinov2 --arch vit_base --batch 64 --steps 20 --warmup 5

Harness check on a CPU (about a minute on 2 shared cores, most of it making the loader rows' phantom cache):

    OMP_NUM_THREADS=1 nice python bench/step_vs_dinov2.py --dinov2 ~/src/dinov2 --arch vit_small --batch 2 \\
        --global-size 56 --local-size 28 --prototypes 1024 --steps 3 --warmup 1 --threads 1
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))          # the other benches, imported for their pieces
from train_speed import PEAK_BF16_TFLOPS, config, make_batch, make_model, plain_step, step_flops, synchronize, to_device

from mri_dino.backbones import load_dinov2_weights


def parse():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dinov2', required=True, help='path of a DINOv2 checkout (the folder holding dinov2/)')
    parser.add_argument('--arch', default='vit_small', choices=['vit_small', 'vit_base', 'vit_large', 'vit_giant2'])
    parser.add_argument('--batch', type=int, default=64, help='samples per step (per GPU)')
    parser.add_argument('--global-size', type=int, default=224)
    parser.add_argument('--local-size', type=int, default=98)
    parser.add_argument('--local-crops', type=int, default=8)
    parser.add_argument('--prototypes', type=int, default=65536, help="DINO (and shared iBOT) head's prototypes")
    parser.add_argument('--drop-path', type=float, default=None, help="student drop path; default: DINOv2's config value")
    parser.add_argument('--steps', type=int, default=10, help='timed steps')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps first')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--dinov2-fp16', action='store_true', help="DINOv2's default precision (fp16 + grad scaler) instead of bf16")
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--loader-seconds', type=float, default=5.0, help='CPU seconds each data-loader pipeline runs')
    parser.add_argument('--no-loader', action='store_true', help='skip the data-loader rows')
    parser.add_argument('--side', choices=['ours', 'dinov2'], default=None, help=argparse.SUPPRESS)   # a child process's side
    args = parser.parse_args()
    args.patch_size = 14
    args.precision = 'bf16' if args.device.startswith('cuda') else 'fp32'
    return args

# ---------------------------------------------------------------- DINOv2 from its checkout
class BlockDiagonalShim:
    "Stands in for xFormers' `fmha.BlockDiagonalMask` in DINOv2's head call: concatenate (1, n_i, D) tensors, split them back"
    def __init__(self, sizes): self.sizes = sizes
    @classmethod
    def from_tensor_list(cls, tensors): return cls([t.shape[1] for t in tensors]), torch.cat(tensors, dim=1)
    def split(self, x): return list(x.split(self.sizes, dim=1))


def check_checkout(path:str):
    "Stop with one line unless `path` is a DINOv2 checkout"
    if not (Path(path) / 'dinov2' / 'train' / 'ssl_meta_arch.py').exists():
        raise SystemExit(f"--dinov2 {path}: no dinov2/train/ssl_meta_arch.py there; give the folder of a DINOv2 checkout "
                         "(git clone https://github.com/facebookresearch/dinov2)")


def import_dinov2(path:str, quiet:bool=False):
    "DINOv2's modules from the checkout; without xFormers, the shim of its block-diagonal attention (printed)"
    check_checkout(path)
    sys.path.insert(0, str(Path(path).resolve()))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        from dinov2.layers import block                            # decides XFORMERS_AVAILABLE before any shim exists
        shim = not block.XFORMERS_AVAILABLE
        if shim and not quiet:
            print("!! SHIM: xFormers is missing: each DINOv2 block runs the crop sets one by one (what its block-diagonal "
                  "mask computes) and the head's BlockDiagonalMask is a cat/split; DINOv2's figures here are not its own on a GPU")
        if shim:
            fmha = types.ModuleType('xformers.ops.fmha'); fmha.BlockDiagonalMask = BlockDiagonalShim
            ops = types.ModuleType('xformers.ops'); ops.fmha = fmha
            package = types.ModuleType('xformers'); package.ops = ops
            sys.modules.update({'xformers': package, 'xformers.ops': ops, 'xformers.ops.fmha': fmha})
            parent = block.NestedTensorBlock.__mro__[1]
            def forward(self, x): return [parent.forward(self, t) for t in x] if isinstance(x, list) else parent.forward(self, x)
            block.NestedTensorBlock.forward = forward
        from dinov2.configs import dinov2_default_config
        from dinov2.train.ssl_meta_arch import SSLMetaArch
        from dinov2.train.train import apply_optim_scheduler, build_optimizer
    if shim:                                                         # leave no fake xFormers behind for other imports
        for name in ('xformers.ops.fmha', 'xformers.ops', 'xformers'): sys.modules.pop(name)
    return types.SimpleNamespace(default_config=dinov2_default_config, SSLMetaArch=SSLMetaArch, shim=shim,
                                 build_optimizer=build_optimizer, apply_optim_scheduler=apply_optim_scheduler)


def dinov2_config(args, dinov2):
    "DINOv2's ssl_default_config.yaml merged with this arch, crops, heads, batch and precision"
    precision = 'fp16' if args.dinov2_fp16 else 'bf16'
    policy = lambda reduce: dict(mixed_precision=dict(param_dtype=precision, reduce_dtype=reduce if precision == 'bf16' else 'fp16'))
    modules = lambda reduce: dict(backbone=policy('bf16'), dino_head=policy(reduce), ibot_head=policy(reduce))
    overrides = dict(
        student=dict(arch=args.arch, patch_size=args.patch_size),
        crops=dict(global_crops_size=args.global_size, local_crops_size=args.local_size, local_crops_number=args.local_crops),
        dino=dict(head_n_prototypes=args.prototypes), ibot=dict(head_n_prototypes=args.prototypes),
        train=dict(batch_size_per_gpu=args.batch),
        compute_precision=dict(grad_scaler=args.device.startswith('cuda') and args.dinov2_fp16,
                               student=modules('fp32'), teacher=modules('bf16')))
    if args.drop_path is not None: overrides['student']['drop_path_rate'] = args.drop_path
    cfg = OmegaConf.merge(dinov2.default_config, overrides)
    cfg.optim.lr = cfg.optim.base_lr * (args.batch / 1024) ** 0.5                 # its sqrt_wrt_1024 rule
    return cfg


class Here:
    "CPU shim for DINOv2's `images[key].cuda(non_blocking=True)`: the tensor as it is"
    def __init__(self, tensor): self.tensor = tensor
    def cuda(self, non_blocking=False): return self.tensor


def dinov2_batch(batch:dict, cuda:bool) -> dict:
    "Our collated batch (view-major crops, iBOT masks) in the keys of DINOv2's `collate_data_and_cast`"
    masks = batch['masks']
    wrap = (lambda t: t) if cuda else Here
    indices = masks.flatten().nonzero().flatten()
    return dict(collated_global_crops=wrap(batch['global_crops']), collated_local_crops=wrap(batch['local_crops']),
                collated_masks=wrap(masks), mask_indices_list=wrap(indices), masks_weight=wrap(batch['mask_weights']),
                n_masked_patches=wrap(torch.full((1,), len(indices), dtype=torch.long)),
                upperbound=max(int(batch['upperbound']), len(indices)))


def fsdp_as_dinov2_needs() -> bool:
    "Whether this torch's FSDP has the internals DINOv2's helpers call (torch 2.0's `_reshard(state, handles, ...)`, `.params`)"
    import inspect
    from torch.distributed.fsdp import _runtime_utils
    return 'handles' in inspect.signature(_runtime_utils._reshard).parameters


class DINOv2Step:
    "DINOv2's model, optimiser and the body of its train.py loop for one iteration"
    def __init__(self, args, dinov2):
        self.args, self.cuda = args, args.device.startswith('cuda')
        self.fsdp = self.cuda and fsdp_as_dinov2_needs()
        self.cfg = dinov2_config(args, dinov2)
        torch.manual_seed(0)
        self.model = dinov2.SSLMetaArch(self.cfg)
        for key in self.model.student: self.model.teacher[key].load_state_dict(self.model.student[key].state_dict())
        self.dinov2 = dinov2

    def start(self):
        "Onto the device (FSDP on CUDA as its train.py does), and the optimiser with its parameter groups"
        model = self.model.to(self.args.device)
        if self.fsdp:
            import dinov2.distributed
            if not dinov2.distributed.is_enabled(): dinov2.distributed.enable(overwrite=True)
            model.prepare_for_distributed_training()
        else:
            model.need_to_synchronize_fsdp_streams = False       # its stream sync works on FSDP modules only
            why = (f"torch {torch.__version__} lacks the FSDP internals its helpers call (it pins torch 2.0): one GPU, "
                   f"{self.precision()} autocast" if self.cuda else "its FSDP wrapper takes a CUDA device")
            print(f"!! SHIM: DINOv2 without FSDP ({why}): clip_grad_norm_ and the teacher EMA act on its plain modules")
        self.optimizer = self.dinov2.build_optimizer(self.cfg, model.get_params_groups())
        self.dinov2.apply_optim_scheduler(self.optimizer, self.cfg.optim.lr, self.cfg.optim.weight_decay, self.cfg.optim.lr)
        model.train()

    def precision(self) -> str: return 'fp16' if self.args.dinov2_fp16 else 'bf16'

    def autocast(self):
        "Unwrapped on CUDA, autocast stands in for the FSDP mixed-precision policy; FSDP and CPU: none"
        dtype = torch.float16 if self.args.dinov2_fp16 else torch.bfloat16
        return torch.autocast('cuda', dtype=dtype, enabled=self.cuda and not self.fsdp)

    def __call__(self, images:dict, teacher_temp:float=0.04, momentum:float=0.992) -> dict:
        model, optimizer, clip = self.model, self.optimizer, self.cfg.optim.clip_grad
        optimizer.zero_grad(set_to_none=True)
        with self.autocast(): losses = model.forward_backward(images, teacher_temp=teacher_temp)
        scaler = model.fp16_scaler
        if scaler is not None: scaler.unscale_(optimizer)
        for module in model.student.values():
            if self.fsdp: module.clip_grad_norm_(clip)
            else: torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        if scaler is not None: scaler.step(optimizer); scaler.update()
        else: optimizer.step()
        if self.fsdp: model.update_teacher(momentum)
        else: self.plain_ema(momentum)
        return {k: float(v) for k, v in losses.items()}

    @torch.no_grad()
    def plain_ema(self, momentum):
        "DINOv2's `update_teacher` (foreach mul and add) on plain modules"
        teacher = [p for k in self.model.student for p in self.model.teacher[k].parameters()]
        student = [p for k in self.model.student for p in self.model.student[k].parameters()]
        torch._foreach_mul_(teacher, momentum)
        torch._foreach_add_(teacher, student, alpha=1 - momentum)

# ---------------------------------------------------------------- ours, from the same weights
def ours_from(args, dinov2_model):
    "Our SSLModel (train_speed's config with DINOv2's LayerScale, drop path and heads) holding DINOv2's initial student and teacher"
    cfg = config(args)
    student = dinov2_model.cfg.student
    cfg.student.layerscale, cfg.student.drop_path_rate = float(student.layerscale), float(student.drop_path_rate)
    cfg.student.drop_path_uniform = bool(student.drop_path_uniform)                # one rate in every block, as DINOv2
    model = make_model(cfg, 'cpu')
    load_dinov2_weights(model.student.backbone, dinov2_model.student.backbone.state_dict())
    names = {'last_layer.weight_g': 'last_layer.parametrizations.weight.original0',
             'last_layer.weight_v': 'last_layer.parametrizations.weight.original1'}
    head = {names.get(k, k): v for k, v in dinov2_model.student.dino_head.state_dict().items()}
    model.student.dino_head.load_state_dict(head)
    model.teacher.load_state_dict(model.student.state_dict())
    return cfg, model


def ours_step(model, optimizer, batch, args) -> dict:
    "Our step as bench/train_speed.py's plain loop runs it (DINOv2's teacher momentum)"
    _, terms = plain_step(model, optimizer, batch, args, momentum=0.992)
    return {k: float(v) for k, v in terms.items()}

# ---------------------------------------------------------------- timing and memory
class PeakRSS:
    "Peak resident memory of this process (GiB) while the block runs, sampled every 5 ms"
    def __enter__(self):
        self.start = self.peak = self.rss(); self.running = True
        self.thread = threading.Thread(target=self.watch, daemon=True); self.thread.start()
        return self
    def __exit__(self, *exc): self.running = False; self.thread.join()
    def watch(self):
        while self.running: self.peak = max(self.peak, self.rss()); time.sleep(0.005)
    @staticmethod
    def rss() -> float: return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**30


def run_steps(step, args) -> tuple[list, list, str]:
    "Seconds of each timed step, the losses of every step, and the peak memory"
    cuda = args.device.startswith('cuda')
    if cuda: torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    with PeakRSS() as rss:
        for i in range(args.warmup + args.steps):
            synchronize(args.device); start = time.perf_counter()
            losses.append(step())
            synchronize(args.device)
            if i >= args.warmup: times.append(time.perf_counter() - start)
    memory = (f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated" if cuda
              else f"{rss.peak:.2f} GiB RSS (+{rss.peak - rss.start:.2f})")
    return times, losses, memory


def dinov2_flops(step, images) -> float:
    "FLOPs of one DINOv2 step (forward_backward; the optimiser's and EMA's are negligible and left out, as for ours)"
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter, step.autocast(): step.model.forward_backward(images, teacher_temp=0.04)
    return counter.get_total_flops()

# ---------------------------------------------------------------- the data loader
def loader_rates(args) -> dict:
    "Samples/s (CPU time) of one 1-thread worker: our multi-crop recipe, and the crops.on_device worker"
    import tempfile
    from augment_vs_monai import RandomSlices, phantom_slices, rate
    from mri_dino.augment import MultiViewCrops
    from mri_dino.device_views import DeviceCollate
    threads = torch.get_num_threads(); torch.set_num_threads(1)
    recipe = MultiViewCrops(global_crops_size=args.global_size, local_crops_size=args.local_size, local_crops_number=args.local_crops)
    collate, per_call = DeviceCollate.from_recipe(recipe, patch_size=args.patch_size), 16
    with tempfile.TemporaryDirectory() as folder:
        load = RandomSlices(phantom_slices(Path(folder)))
        rates = {'MultiViewCrops in the worker (default)': rate(lambda: recipe(load()), args.loader_seconds)[0],
                 'crops.on_device worker (read + DeviceCollate)':
                     per_call * rate(lambda: collate([load() for _ in range(per_call)]), args.loader_seconds)[0]}
    torch.set_num_threads(threads)
    return rates

# ---------------------------------------------------------------- one side, in its own process
def batch_sum(batch:dict) -> float:
    "A checksum of a batch: both processes must have made the same one"
    return float(sum(v.double().sum() for v in batch.values() if isinstance(v, torch.Tensor)))


def run_side(args) -> dict:
    "Build both models from the same seed (ours takes DINOv2's initial weights), make the batch, run this side's steps"
    cuda = args.device.startswith('cuda')
    dinov2 = import_dinov2(args.dinov2, quiet=args.side == 'ours')
    theirs = DINOv2Step(args, dinov2)
    cfg, model = ours_from(args, theirs.model)
    torch.manual_seed(0); random.seed(0); np.random.seed(0)
    batch = make_batch(args)
    device_batch = to_device(batch, args.device)
    result = dict(batch_sum=batch_sum(batch), drop_path=cfg.student.drop_path_rate, uniform=cfg.student.drop_path_uniform,
                  layerscale=cfg.student.layerscale,
                  lr=theirs.cfg.optim.lr)
    if args.side == 'ours':
        del theirs
        model = model.to(args.device).train()
        optimizer = torch.optim.AdamW(model.student.parameters(), lr=result['lr'], weight_decay=0.04)
        times, losses, memory = run_steps(lambda: ours_step(model, optimizer, device_batch, args), args)
        if cuda: result['flops'] = step_flops(args, cfg, device_batch)
    else:
        del model
        images = dinov2_batch(device_batch, cuda)
        theirs.start()
        times, losses, memory = run_steps(lambda: theirs(images), args)
        if cuda: result['flops'] = dinov2_flops(theirs, images)
    return dict(result, times=times, losses=losses, memory=memory)


def side_in_process(side:str) -> dict:
    "Run one side in a fresh process (its own allocator and peak memory); its printed lines pass through"
    command = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:], '--side', side]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    lines = done.stdout.splitlines()
    for line in lines:
        if not line.startswith('RESULT '): print(line)
    if done.returncode: raise SystemExit(f"the {side} side failed (exit status {done.returncode}): see its output above")
    return json.loads(next(line for line in lines if line.startswith('RESULT '))[len('RESULT '):])

# ---------------------------------------------------------------- the run
def main():
    args = parse()
    warnings.filterwarnings('ignore')
    if args.threads: torch.set_num_threads(args.threads)
    if args.side:
        print('RESULT ' + json.dumps(run_side(args)), flush=True)
        return
    check_checkout(args.dinov2)
    cuda = args.device.startswith('cuda')
    name = torch.cuda.get_device_name() if cuda else f'CPU, {torch.get_num_threads()} threads'
    print(f"{args.arch}/14, batch {args.batch} (2 x {args.global_size} px + {args.local_crops} x {args.local_size} px, 3 channels), "
          f"{args.prototypes} prototypes, {args.precision}, {name}; {args.warmup} warm-up + {args.steps} timed steps; "
          f"each side in its own process", flush=True)
    ours, theirs = side_in_process('ours'), side_in_process('dinov2')
    if ours['batch_sum'] != theirs['batch_sum']:
        raise SystemExit(f"the two processes made different batches (checksums {ours['batch_sum']} and {theirs['batch_sum']})")
    print(f"  same batch in both (checksum {ours['batch_sum']:.6g}); student drop path {ours['drop_path']} "
          f"({'in every block' if ours['uniform'] else 'rising to it'}, DINOv2's config), "
          f"LayerScale {ours['layerscale']}; lr {ours['lr']:.2e} (DINOv2's sqrt_wrt_1024)")

    # sanity: both train, and the first step (same weights, same batch) gives DINO losses of one magnitude
    finite = lambda side: all(math.isfinite(v) for step in side['losses'] for v in step.values())
    # DINOv2 logs its iBOT and KoLeo terms halved (ssl_meta_arch.py: `ibot_patch_loss / 2`, `koleo_loss / loss_scales`);
    # doubled back, its terms add up to the loss it back-propagates, which is what ours logs
    backpropagated = dict(ours=lambda l: sum(l.values()),
                          dinov2=lambda l: sum(v * (2 if k in ('ibot_loss', 'koleo_loss') else 1) for k, v in l.items()))
    total = lambda side, key, i: backpropagated[key](side['losses'][i])
    print(f"  losses finite: ours {finite(ours)}, DINOv2 {finite(theirs)}; loss back-propagated, first -> last step: "
          f"ours {total(ours, 'ours', 0):.4f} -> {total(ours, 'ours', -1):.4f}, "
          f"DINOv2 {total(theirs, 'dinov2', 0):.4f} -> {total(theirs, 'dinov2', -1):.4f}")
    dino = lambda side: side['losses'][0]['dino_global_crops_loss'] + side['losses'][0]['dino_local_crops_loss']
    for label, mine, its in [('DINO loss (global + local)', dino(ours), dino(theirs)),
                             ('whole loss back-propagated', total(ours, 'ours', 0), total(theirs, 'dinov2', 0))]:
        ratio = mine / its
        print(f"  first step at the same weights and batch, {label}: ours {mine:.4f}, DINOv2 {its:.4f}, ratio {ratio:.4f} "
              f"({'same magnitude' if 0.5 < ratio < 2 else 'DIFFERENT MAGNITUDE'})")
    print("  (the first step's terms agree to float precision with --drop-path 0; with drop path the two draw other samples "
          "to drop; later steps differ anyway: DINOv2's layer-wise parameter groups, its trained prototype norm)")

    median = lambda values: sorted(values)[len(values) // 2]
    rows = [('mri_dino SSLModel step', median(ours['times']), ours), ('DINOv2 SSLMetaArch step', median(theirs['times']), theirs)]
    print(f"  {'':26s} {'img/s':>9s} {'s/step':>8s}  peak memory")
    for label, seconds, side in rows:
        print(f"  {label:26s} {args.batch / seconds:9.2f} {seconds:8.3f}  {side['memory']}")
    print(f"  ratio ours / DINOv2 (img/s): {rows[1][1] / rows[0][1]:.3f} (above 1: ours faster)")
    if cuda:
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        for label, seconds, side in rows:
            achieved = side['flops'] / seconds / 1e12
            mfu = f"MFU {100 * achieved / peak:.1f} % of {peak:.0f} TFLOP/s" if peak else 'peak unknown'
            print(f"  {label:26s} {side['flops'] / 1e12:.2f} TFLOP per step, {achieved:.1f} TFLOP/s, {mfu}")
    if args.no_loader: return
    print("data loader: one worker (1 thread), phantom 256² slices from a real cache, crops as above", flush=True)
    for label, per_worker in loader_rates(args).items():
        needs = ', '.join(f"{row[0].split()[0]} step {args.batch / row[1]:.1f}/s -> {args.batch / row[1] / per_worker:.2g} workers"
                          for row in rows)
        print(f"  {label:46s} {per_worker:7.1f} samples/s; {needs}")


if __name__ == '__main__':
    main()
