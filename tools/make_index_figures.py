"""Draw the pictures of the index page (and README) from a real pretraining run.

Without `--run`, this runs the README's main job, `mri_dino_train evaluation.online_probe_every=25` (this
checkout's code, `python -m mri_dino.train`), in a temporary folder with its phantom studies and
cache there too (a few minutes on a laptop CPU), then draws from what the run left:

- `crops.png`: the multi-view crops of one phantom sample, as training makes them (two global
  crops with their iBOT masks, four local crops), from the run's `crops`/`augment`/`ibot` config;
- `attention.png`: the trained teacher's CLS attention (every head and the mean) on the middle
  slice of the first study, with the 60 % attention-mass outline;
- `loss_curve.png`: the loss terms per step from the run's `training_metrics.csv`;
- `online_probe.png`: the online probe's kNN and linear-probe scores of the teacher on the phantom's
  `lesion` label every 25 steps (`evaluation.online_probe_every=25`, as the README runs it).

With `--run DIR` it draws from an existing run folder (its `config.yaml` must name a cache
that still exists, or the phantom studies are written again). The pictures go to `nbs/images/`.

Usage: `python tools/make_index_figures.py [--run outputs/pretrain] [--out nbs/images]`.
"""
from __future__ import annotations

import argparse, io, os, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 200_000


def run_default_training(folder:Path) -> Path:
    "Run `mri_dino_train evaluation.online_probe_every=25` (the README's demo) in `folder` with its cache there; returns the run folder"
    environment = dict(os.environ, MRI_DINO_CACHE=str(folder / 'cache'),
                       PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep))
    print(f'running mri_dino_train in {folder} (a few minutes)', flush=True)
    subprocess.run([sys.executable, '-m', 'mri_dino.train', 'evaluation.online_probe_every=25'], cwd=folder, env=environment, check=True)
    return folder / 'outputs' / 'pretrain'


def save_png(fig, path:Path, dpi:int=80) -> Path:
    "Save a figure as an optimised PNG (palette colours when that keeps it under `MAX_BYTES`)"
    import matplotlib.pyplot as plt
    from PIL import Image
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=dpi, bbox_inches='tight', facecolor='white')
    plt.close(fig)
    buffer.seek(0)
    image = Image.open(buffer).convert('RGB')
    path.parent.mkdir(parents=True, exist_ok=True)
    for candidate in (image, image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)):
        candidate.save(path, optimize=True)
        if path.stat().st_size <= MAX_BYTES: break
    if path.stat().st_size > MAX_BYTES: raise SystemExit(f'{path} is {path.stat().st_size} bytes, more than {MAX_BYTES}')
    print(f'{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {image.size[0]}x{image.size[1]}, '
          f'{path.stat().st_size // 1000} kB')
    return path


def middle_slice(cfg, cache_dir):
    "The middle axial slice of the first study (the one the training run's own attention.png shows), untransformed"
    from mri_dino.datasets import SliceDataset
    data = cfg.data
    dataset = SliceDataset(cache_dir, axis='axial', modalities=list(data.modalities), restrict=data.restrict, split=data.split)
    items = [i for i, (study, _, _) in enumerate(dataset.items) if study == 0]
    return dataset[items[len(items) // 2]]


def crops_figure(cfg, sample, seed:int=3):
    "The multi-view crops of `sample` with the run's recipe and iBOT masks"
    import torch
    from mri_dino.views import show_views
    from mri_dino.masking import collate_views
    from mri_dino.train import view_recipe
    import random
    import numpy as np
    recipe = view_recipe(cfg)
    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)
    views = recipe(sample)
    generator = torch.Generator().manual_seed(seed)
    batch = collate_views([views], patch_size=int(cfg.student.patch_size), mask_ratio_min_max=list(cfg.ibot.mask_ratio_min_max),
                          mask_sample_probability=1.0, generator=generator)     # both global crops masked, to show the masks
    return show_views(batch, recipe=recipe, names=list(cfg.data.modalities), patch_size=int(cfg.student.patch_size),
                      channels='each', size=1.5)


def attention_figure_of_run(run:Path, sample):
    "The trained teacher's CLS attention on `sample`"
    from mri_dino.attention import attention_figure, attention_maps
    from mri_dino.loading import input_settings, load_backbone
    backbone = load_backbone(run)
    settings = input_settings(backbone)
    maps = attention_maps(backbone, sample['image'], sample['modality_mask'], image_size=settings['image_size'],
                          normalize_mean=settings['normalize_mean'], normalize_std=settings['normalize_std'], upsample='linear')
    return attention_figure(maps, modalities=settings['modalities'], keep_mass=0.6,
                            title=f"{sample['study_id']}: teacher CLS attention after the default run")


def loss_figure(metrics_csv:Path, smooth:int=10):
    "Every loss term per step (thin: each step, thick: the mean of `smooth` steps)"
    import matplotlib.pyplot as plt
    import pandas as pd
    table = pd.read_csv(metrics_csv)
    terms = [c for c in table.columns if c.endswith('_loss')]
    if not terms or 'iteration' not in table: raise SystemExit(f'{metrics_csv}: no iteration and *_loss columns')
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, columns, title in [(axes[0], ['total_loss'], 'total loss'), (axes[1], [c for c in terms if c != 'total_loss'], 'loss terms')]:
        for column in columns:
            line, = ax.plot(table.iteration, table[column], lw=0.6, alpha=0.35)
            ax.plot(table.iteration, table[column].rolling(smooth, min_periods=1).mean(), lw=1.8, color=line.get_color(),
                    label=column.removesuffix('_loss'))
        ax.set_xlabel('step'); ax.set_title(title, fontsize=10); ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    epochs = int(table.epoch.max()) + 1 if 'epoch' in table else None
    fig.suptitle(f'mri_dino_train (default config): {len(table)} steps' + (f', {epochs} epochs' if epochs else ''), fontsize=10)
    fig.tight_layout()
    return fig


def probe_figure(metrics_csv:Path):
    "The online probe's balanced accuracy and AUC (kNN and linear) at the steps it ran"
    import matplotlib.pyplot as plt
    import pandas as pd
    table = pd.read_csv(metrics_csv)
    if 'probe_knn_auc' not in table: return None
    probed = table.dropna(subset=['probe_knn_auc'])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for ax, metric, title in [(axes[0], 'balanced_accuracy', 'balanced accuracy'), (axes[1], 'auc', 'AUC')]:
        for probe in ('knn', 'linear'):
            ax.plot(probed.iteration, probed[f'probe_{probe}_{metric}'], 'o-', label='kNN' if probe == 'knn' else 'linear probe')
        ax.set_xlabel('step'); ax.set_ylim(0, 1.05); ax.set_title(title, fontsize=10); ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    cost = probed.probe_time_s.mean() / table.step_time_s.median()
    fig.suptitle(f'online probe of the teacher, lesion label, out of fold: {len(probed)} probes, each about {cost:.1f} training steps',
                 fontsize=10)
    fig.tight_layout()
    return fig


def make_figures(run:Path, out:Path) -> list[Path]:
    import matplotlib
    matplotlib.use('Agg')
    from mri_dino.config import load_config
    from mri_dino.train import prepare_cache
    cfg = load_config(run / 'config.yaml')
    cache_dir = prepare_cache(cfg)
    sample = middle_slice(cfg, cache_dir)
    return [save_png(crops_figure(cfg, sample), out / 'crops.png'),
            save_png(attention_figure_of_run(run, sample), out / 'attention.png'),
            save_png(loss_figure(run / 'training_metrics.csv'), out / 'loss_curve.png')] + \
           ([save_png(probe, out / 'online_probe.png')] if (probe := probe_figure(run / 'training_metrics.csv')) else [])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--run', default=None, help='an existing run folder (default: run mri_dino_train in a temporary folder)')
    parser.add_argument('--out', default=str(ROOT / 'nbs' / 'images'), help='where the PNGs go')
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))                        # this checkout's mri_dino
    if args.run: return make_figures(Path(args.run), Path(args.out))
    with tempfile.TemporaryDirectory(prefix='mri_dino_index_') as folder:
        return make_figures(run_default_training(Path(folder)), Path(args.out))


if __name__ == '__main__':
    main()
