"""Non-collapse evidence of the small-compute presets (`mri_dino/configs/small_compute_b*.yaml`), beside baselines.

Each preset trains as it ships (its learning rate, scaling rule, teacher temperature and warm-up, centering or
Sinkhorn-Knopp, KoLeo weight, teacher momentum, batch) on the built-in phantom studies, at a small size that a CPU
runs in minutes: a ViT of width 64 and depth 2, 32 px global and 16 px local crops (two of them). Every run sees the
same number of samples (`--samples`), so a batch-32 run takes 8 times the steps of a batch-256 run, and keeps its
preset's schedule shape (its 100 epochs shrunk to 10 of `samples / 10 / batch` steps each, the learning-rate and
teacher-temperature warm-ups shrunk alike: still 10 % and 30 % of the run; the heads' last layer stays frozen for
one epoch, 10 % here). The collapse monitor measures the effective rank (RankMe) and spread of the teacher's CLS features about 40
times per run, with the teacher entropy (mean entropy of the teacher's DINO targets, nats) averaged over the steps
since the previous measurement; the student's entropy, the loss and the learning rate come from `training_metrics.csv`, and a second monitor
measures the effective rank of the student's CLS features (the teacher follows the student slowly: with the
presets' momenta it moves only a few per cent of the way in a run this short).

The baselines: `dinov2_default_b32`, DINOv2's ssl_default_config recipe (base_lr 0.004 sqrt-scaled, momentum 0.992,
teacher temperature 0.04 -> 0.07, softmax centering, KoLeo 0.1, layer-wise decay 0.9) unchanged at batch 32; and
`no_sharpening_b32`, the b32 preset with the teacher as soft as the student (temperature 0.1 = the student's), the
setting DINO names as the one that collapses to the uniform distribution.

Writes `presets_collapse.csv` (one row per run and measurement) and `presets_collapse.png` into `--out`, and
prints, per run, the last measurement and its ratio to the first baseline's. Usage:
    PYTHONPATH=. nice python bench/presets_collapse.py [--samples 12800] [--out bench_out/presets] [--runs b32 b64 ...]
"""
import argparse, contextlib, io, math, shutil, time, warnings
from pathlib import Path

import pandas as pd
import torch

from mri_dino.collapse import CollapseMonitor
from mri_dino.config import load_config
from mri_dino.train import train

class StudentMonitor(CollapseMonitor):
    "The same measurement on the student's CLS features (a name of its own: fastai keys callbacks by class name)"

SMALL = ['student.embed_dim=64', 'student.num_heads=2', 'student.depth=2', 'crops.global_crops_size=32',
         'crops.local_crops_size=16', 'crops.local_crops_number=2', 'train.num_workers=0', 'train.tensorboard=false',
         'train.attention_map=false', 'train.print_every_steps=0', 'train.checkpoint_every_steps=0', 'train.keep_checkpoints=1',
         'train.auto_resume=false']
DINOV2_DEFAULT = ['optim.base_lr=0.004', 'optim.scaling_rule=sqrt_wrt_1024', 'optim.epochs=100', 'optim.warmup_epochs=10',
                  'optim.layerwise_decay=0.9', 'teacher.momentum_teacher=0.992', 'teacher.warmup_teacher_temp=0.04',
                  'teacher.teacher_temp=0.07', 'teacher.warmup_teacher_temp_epochs=30', 'train.centering=centering',
                  'dino.koleo_loss_weight=0.1', 'train.batch_size_per_gpu=32']
RUNS = {   # name -> (config, overrides)
    'b32': ('small_compute_b32', []), 'b64': ('small_compute_b64', []),
    'b128': ('small_compute_b128', []), 'b256': ('small_compute_b256', []),
    'dinov2_default_b32': (None, DINOV2_DEFAULT),
    'no_sharpening_b32': ('small_compute_b32', ['teacher.warmup_teacher_temp=0.1', 'teacher.teacher_temp=0.1']),
}
BASELINES = ('dinov2_default_b32', 'no_sharpening_b32')
EPOCHS = 10   # the schedule of every run: the preset's 100 epochs shrunk to 10, the warm-ups in proportion

def run_config(name, samples, out, cache_root):
    "The run's config at the small size: its preset, the number of samples, the output folder"
    config, overrides = RUNS[name]
    preset = load_config(config, overrides)
    batch, shrink = int(preset.train.batch_size_per_gpu), EPOCHS / preset.optim.epochs
    epoch_length = max(1, round(samples / EPOCHS / batch))
    steps = epoch_length * EPOCHS
    scaled = [f'optim.epochs={EPOCHS}', f'optim.warmup_epochs={preset.optim.warmup_epochs * shrink:g}',
              f'teacher.warmup_teacher_temp_epochs={preset.teacher.warmup_teacher_temp_epochs * shrink:g}']
    return load_config(config, [*overrides, *SMALL, *scaled, f'train.OFFICIAL_EPOCH_LENGTH={epoch_length}',
                                f'train.collapse_every={max(1, steps // 40)}', f'train.output_dir={out / name}',
                                f'data.cache_root={cache_root}'])

def measure(name, cfg, out):
    "Train; the collapse rows with the mean teacher and student entropy and loss since the previous row"
    start = time.perf_counter()
    student = StudentMonitor(int(cfg.train.collapse_every), module='student', key='global_cls')
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore')
        train(cfg, extra_cbs=[student])
    seconds = time.perf_counter() - start
    collapse = pd.read_csv(out / name / 'collapse_metrics.csv')
    collapse['student_effective_rank'] = student.frame.set_index('step').effective_rank.reindex(collapse.step).values
    metrics = pd.read_csv(out / name / 'training_metrics.csv')
    window = pd.cut(metrics.iteration, [-1, *collapse.step], labels=collapse.step).astype(float)
    means = metrics.groupby(window)[['student_entropy', 'total_loss', 'lr']].mean()
    rows = collapse.join(means, on='step')          # the monitor's rows hold the teacher entropy since the previous row
    batch = int(cfg.train.batch_size_per_gpu)
    rows.insert(0, 'run', name); rows.insert(1, 'batch', batch)
    rows.insert(3, 'samples', (rows.step + 1) * batch)
    return rows, seconds

def figure(table, path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for name, rows in table.groupby('run', sort=False):
        style = '--' if name in BASELINES else '-'
        axes[0].plot(rows.samples, rows.effective_rank, style, label=name)
        axes[1].plot(rows.samples, rows.student_effective_rank, style, label=name)
        axes[2].plot(rows.samples, rows.teacher_entropy, style, label=name)
    axes[0].set(xlabel='samples seen', ylabel='effective rank (RankMe)', title="teacher CLS features")
    axes[1].set(xlabel='samples seen', ylabel='effective rank (RankMe)', title="student CLS features")
    axes[2].set(xlabel='samples seen', ylabel='nats', title='teacher entropy (DINO targets)')
    axes[2].axhline(math.log(256), color='grey', lw=0.8, ls=':'); axes[2].text(0, math.log(256) - 0.35, 'uniform over 256 prototypes', fontsize=7, color='grey')
    axes[0].legend(fontsize=7)
    fig.tight_layout(); fig.savefig(path, dpi=110); plt.close(fig)

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--samples', type=int, default=12800, help='samples each run sees')
    parser.add_argument('--out', type=Path, default=Path('bench_out/presets'))
    parser.add_argument('--runs', nargs='*', default=list(RUNS), choices=list(RUNS))
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    tables = []
    for name in args.runs:
        if (args.out / name).exists(): shutil.rmtree(args.out / name)
        cfg = run_config(name, args.samples, args.out, args.out / 'cache')
        rows, seconds = measure(name, cfg, args.out)
        tables.append(rows)
        last = rows.iloc[-1]
        print(f"{name:20s} batch {rows.batch.iloc[0]:3d}: {last.step + 1:5.0f} steps in {seconds:6.0f} s, effective rank "
              f"{rows.effective_rank.iloc[0]:5.2f} -> {last.effective_rank:5.2f} (student's {last.student_effective_rank:5.2f}), teacher entropy {rows.teacher_entropy.iloc[0]:4.2f} -> "
              f"{last.teacher_entropy:4.2f} nats, spread {last.spread:.3f}, flagged collapsed {int(rows.collapsed.sum())} of {len(rows)}", flush=True)
        table = pd.concat(tables, ignore_index=True)
        table.round(4).to_csv(args.out / 'presets_collapse.csv', index=False)      # after every run: a partial table survives
        figure(table, args.out / 'presets_collapse.png')
    final = table.groupby('run', sort=False).last()
    reference = next((b for b in BASELINES if b in final.index), final.index[0])
    print(f"\nlast measurement, ratio to {reference}:")
    for name, row in final.iterrows():
        base = final.loc[reference]
        print(f"{name:20s} effective rank {row.effective_rank:6.2f} ({row.effective_rank / base.effective_rank:5.2f}x)  "
              f"student's {row.student_effective_rank:6.2f} ({row.student_effective_rank / base.student_effective_rank:5.2f}x)  "
              f"teacher entropy {row.teacher_entropy:5.2f} ({row.teacher_entropy / base.teacher_entropy:5.2f}x)  spread {row.spread:.3f}")

if __name__ == '__main__': main()
