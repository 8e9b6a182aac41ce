"""Evidence that pretraining helps: lesion probes of a briefly pretrained backbone next to the same probes of the
same architecture left at its random initialisation.

1. phantom studies (`make_phantom_dataset`, labels lesion / significant / fold) preprocessed into a cache;
2. DINO + iBOT + KoLeo pretraining of a small 2D ViT (stack fusion, patch 8) on axial ROI slices of the cache
   (SliceDataset -> MultiViewCrops -> collate_views -> SSLModel -> ssl_learner), on CPU for a few minutes;
3. the teacher (loaded back with `mri_dino.eval.load_backbone` from the run folder) and a randomly initialised
   backbone of the same config and seed go through the same protocol (`probe_cache`): CLS features of every ROI
   slice, averaged per study, weighted kNN (k=20, T=0.07) and linear probe, 5-fold cross-validation;
4. a table: metric means over folds (± std) for both backbones, and pretrained / random.

    PYTHONPATH=. python bench/probe_pretrained_vs_random.py                  # ~10 minutes on 2 CPU cores
    PYTHONPATH=. python bench/probe_pretrained_vs_random.py --studies 40 --epochs 30 --out bench/results/probe

With --run an existing run folder (or any backbone `load_backbone` reads) is probed instead of pretraining.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from mri_dino.augment import MultiViewCrops
from mri_dino.datasets import SliceDataset
from mri_dino.eval import METRICS, load_backbone, probe_cache, cache_features, evaluation_table
from mri_dino.learner import EpochBatchSampler, SSLDataLoaders, SSLModel, fit_ssl, ssl_learner
from mri_dino.masking import collate_views
from mri_dino.phantom import make_phantom_dataset
from mri_dino.preprocess import preprocess_dataset
from mri_dino.vit import build_backbone


def experiment_config(args) -> dict:
    "The run's config: the sections the learner reads, and those `load_backbone` / `input_settings` read back"
    return dict(
        data=dict(modalities=['t2w', 'adc', 'dwi']),
        student=dict(arch='vit_tiny', patch_size=8, embed_dim=args.embed_dim, depth=args.depth, num_heads=args.heads,
                     drop_path_rate=0.0),
        crops=dict(global_crops_size=args.size, local_crops_size=args.size // 2, local_crops_number=4,
                   global_crops_scale=[0.4, 1.0], local_crops_scale=[0.1, 0.4]),
        augment=dict(normalize_mean=0.5, normalize_std=0.25),
        dino=dict(head_n_prototypes=1024, head_hidden_dim=512, head_bottleneck_dim=128, koleo_loss_weight=0.1),
        ibot=dict(loss_weight=1.0, separate_head=False),
        teacher=dict(momentum_teacher=0.99, final_momentum_teacher=1.0, warmup_teacher_temp=0.04, teacher_temp=0.06,
                     warmup_teacher_temp_epochs=max(1, args.epochs // 5)),
        optim=dict(epochs=args.epochs, base_lr=args.lr, scaling_rule='none', warmup_epochs=max(1, args.epochs // 10),
                   min_lr=1e-6, weight_decay=0.04, weight_decay_end=0.2, clip_grad=3.0, freeze_last_layer_epochs=1,
                   layerwise_decay=1.0, patch_embed_lr_mult=1.0),
        train=dict(batch_size_per_gpu=args.batch, centering='centering', checkpoint_every_steps=0, keep_checkpoints=1,
                   print_every_steps=args.print_every, nan_policy='stop', tensorboard=False))


def pretrain(cache:Path, run:Path, args) -> Path:
    "A short DINO/iBOT pretraining on the cache's ROI slices; returns the run folder"
    cfg = experiment_config(args)
    crops = cfg['crops']
    recipe = MultiViewCrops(global_crops_size=crops['global_crops_size'], local_crops_size=crops['local_crops_size'],
                            local_crops_number=crops['local_crops_number'], global_crops_scale=crops['global_crops_scale'],
                            local_crops_scale=crops['local_crops_scale'], crop_from_tumor_foreground=0.8,
                            normalize_mean=cfg['augment']['normalize_mean'], normalize_std=cfg['augment']['normalize_std'])
    dataset = SliceDataset(cache, axis='axial', restrict='roi', margin=6.0, epoch_length=args.epoch_length, seed=args.seed,
                           transform=recipe)
    sampler = EpochBatchSampler(len(dataset), args.batch, seed=args.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=args.workers,
                                         collate_fn=lambda samples: collate_views(samples, patch_size=8))
    torch.manual_seed(args.seed)
    backbone = build_backbone(cfg['student'], in_chans=3, modalities=cfg['data']['modalities'], img_size=args.size)
    model = SSLModel.from_config(cfg, backbone)
    run.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(cfg)
    (run / 'config.yaml').write_text(text)
    learn = ssl_learner(cfg, model, SSLDataLoaders(loader), run, config_text=text)
    start = time.perf_counter()
    fit_ssl(learn)
    print(f"pretrained {learn.step} steps in {time.perf_counter() - start:.0f} s -> {run}", flush=True)
    return run


def random_backbone(run_backbone):
    "The same architecture as the run's, at the initialisation the run started from (same seed)"
    cfg = run_backbone.run_config
    torch.manual_seed(ARGS.seed)
    backbone = build_backbone(cfg['student'], in_chans=3, modalities=cfg['data']['modalities'],
                              img_size=cfg['crops']['global_crops_size']).eval()
    backbone.run_config = cfg
    return backbone


def table(results:dict) -> pd.DataFrame:
    "metric x (pretrained, random, ratio) for each probe"
    rows = []
    for probe in ('knn', 'linear'):
        for metric in METRICS:
            cells = {}
            for name in ('pretrained', 'random'):
                m = results[name][probe].metrics
                cells[name] = f"{m.loc['mean', metric]:.3f} ± {m.loc['std', metric]:.3f}"
                cells[f'{name}_mean'] = m.loc['mean', metric]
            ratio = cells['pretrained_mean'] / cells['random_mean'] if cells['random_mean'] > 0 else float('nan')
            rows.append(dict(probe=probe, metric=metric, pretrained=cells['pretrained'], random=cells['random'],
                             ratio=f"{ratio:.2f}", difference=f"{cells['pretrained_mean'] - cells['random_mean']:+.3f}"))
    return pd.DataFrame(rows)


def main(args):
    out = Path(args.out)
    data, cache = out / 'phantom', out / 'cache'
    if not (cache / 'index.csv').exists():
        start = time.perf_counter()
        make_phantom_dataset(data, n=args.studies, seed=args.seed, n_folds=args.folds)
        report = preprocess_dataset(data, cache, workers=args.workers or 1, progress=False)
        print(f"{report} (phantom + cache in {time.perf_counter() - start:.0f} s)", flush=True)
    run = Path(args.run) if args.run else pretrain(cache, out / 'run', args)
    pretrained = load_backbone(run)
    backbones = {'pretrained': pretrained, 'random': random_backbone(pretrained)}
    labels = evaluation_table(cache)
    print(f"{len(labels)} studies, {int(labels[args.label].sum())} with {args.label}, folds {sorted(labels.fold.unique())}")
    results = {}
    for name, backbone in backbones.items():
        features = cache_features(backbone, cache, batch_size=64)
        results[name] = probe_cache(backbone, cache, args.label, labels, ('knn', 'linear'), level='study',
                                    out=out / f'probe_{name}', features=features)
    summary = table(results)
    print(f"\nlesion probes, {args.folds}-fold CV over {len(labels)} phantom studies (study-level CLS features; "
          f"mean ± std over folds; ratio = pretrained / random)")
    print(summary.to_string(index=False))
    (out / 'summary.json').write_text(json.dumps(dict(args=vars(args), table=summary.to_dict('records')), indent=1))


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='bench/results/probe_pretrained_vs_random')
    parser.add_argument('--run', default=None, help='probe this run folder / backbone instead of pretraining')
    parser.add_argument('--studies', type=int, default=40)
    parser.add_argument('--folds', type=int, default=5)
    parser.add_argument('--label', default='lesion')
    parser.add_argument('--epochs', type=int, default=20)
    parser.add_argument('--epoch-length', type=int, default=256, help='slices per epoch')
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--size', type=int, default=64, help='global crop size (local: half)')
    parser.add_argument('--embed-dim', type=int, default=96)
    parser.add_argument('--depth', type=int, default=4)
    parser.add_argument('--heads', type=int, default=3)
    parser.add_argument('--lr', type=float, default=5e-4)
    parser.add_argument('--workers', type=int, default=0)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--print-every', type=int, default=20)
    ARGS = parser.parse_args()
    main(ARGS)
