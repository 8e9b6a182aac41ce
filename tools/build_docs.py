"""Build the docs site without Quarto, and check it.

Quarto cannot be installed on every machine (CI here among them), so this script does what
`nbdev-docs` does up to the point where Quarto takes over, then stands in for Quarto:

1. `nbdev-proc-nbs`: nbdev's own processing of every notebook for the docs (it executes the
   exported and `show_doc` cells, and every cell that imports something). A failure here is
   a failure of `nbdev-docs` too, so the build stops with the notebook and cell named.
   nbdev executes every cell that holds an import while building the docs, so a test cell
   must not import anything (a failing or slow test there breaks or slows the docs build).
2. Every processed notebook is rendered to HTML with nbconvert, with a sidebar in the order
   of `sidebar.yml`, into `_docs/` (the `output-dir` of `nbs/nbdev.yml`).
3. With `--screenshot FILE`, headless Chromium opens the rendered index page and saves a
   screenshot; the build fails when Chromium cannot render it or the picture is blank.

Usage: `python tools/build_docs.py [--out _docs] [--screenshot _docs/index.png]`.
"""
from __future__ import annotations

import argparse, html, json, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path

import nbformat, yaml
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

ROOT = Path(__file__).resolve().parents[1]
MIXED_IMPORTS = 'Found cells containing imports and other code'


def process_notebooks() -> Path:
    "Run nbdev's docs processing into `_proc/`; raise with nbdev's message when it fails."
    result = subprocess.run(['nbdev-proc-nbs', '--force'], cwd=ROOT, capture_output=True, text=True)
    output = result.stdout + result.stderr
    if result.returncode != 0 or 'Traceback' in output:
        raise SystemExit(f'nbdev-proc-nbs failed (the docs processing of a notebook):\n{output[-6000:]}')
    if (mixed := output.count(MIXED_IMPORTS)):
        print(f'note: {mixed} cell(s) mix imports with other code; nbdev executes them while building '
              'the docs, so keep tests out of them (imports in a cell of their own)')
    return ROOT/'_proc'


def sidebar_order(proc: Path) -> list[str]:
    "Notebook names (without suffix) in the order of `sidebar.yml`, sections flattened."
    sidebar = yaml.safe_load((proc/'sidebar.yml').read_text())['website']['sidebar']['contents']
    def walk(items):
        for item in items:
            if isinstance(item, str): yield item
            elif isinstance(item, dict):
                yield from walk(item.get('contents', [])) if 'contents' in item else ([item['href']] if 'href' in item else [])
    return [Path(name).with_suffix('').as_posix() for name in walk(sidebar) if name.endswith('.ipynb')]


def frontmatter_value(notebook, key) -> str|None:
    "A value of the YAML frontmatter cell nbdev writes (`title`, `description`)."
    for cell in notebook.cells:
        if cell.cell_type == 'raw' and cell.source.startswith('---'):
            return (yaml.safe_load(cell.source.strip().strip('-')) or {}).get(key)


def notebook_title(notebook) -> str:
    "The title from the frontmatter cell nbdev writes, else the first heading."
    if title := frontmatter_value(notebook, 'title'): return title
    for cell in notebook.cells:
        heading = re.search(r'^#\s+(.+)$', cell.source, re.M) if cell.cell_type == 'markdown' else None
        if heading: return heading.group(1).strip()
    return 'untitled'


CELL_KEYS = {'cell_type', 'id', 'metadata', 'source', 'outputs', 'execution_count', 'attachments'}

def tidy(notebook):
    "What Quarto would do with nbdev's processed cells: drop frontmatter and extra keys, obey `echo`/`output`."
    cells = []
    for cell in notebook.cells:
        if cell.cell_type == 'raw': continue                 # Quarto frontmatter
        for key in set(cell) - CELL_KEYS: del cell[key]      # nbdev's bookkeeping (e.g. `has_sd`)
        cell.metadata.pop('execution', None)                 # execution timings, not in nbformat's schema
        directives = dict(re.findall(r'^#\|\s*([\w-]+):\s*(\S+)', cell.source, re.M))
        if cell.cell_type == 'code':
            if directives.get('output') == 'false': cell.outputs = []
            if directives.get('echo') == 'false' or not cell.source.strip():
                cell.metadata.setdefault('tags', []).append('remove_input')
            cell.source = re.sub(r'^#\|.*\n?', '', cell.source, flags=re.M)
            if not cell.source.strip() and not cell.outputs: continue
        cells.append(cell)
    notebook.cells = cells


def render(proc: Path, out: Path) -> list[Path]:
    "Render every processed notebook to `out/<name>.html` with a shared sidebar."
    names = sidebar_order(proc)
    names += sorted(p.relative_to(proc).with_suffix('').as_posix() for p in proc.rglob('*.ipynb')
                    if p.relative_to(proc).with_suffix('').as_posix() not in names)
    notebooks = {name: nbformat.read(proc/f'{name}.ipynb', as_version=4) for name in names
                 if (proc/f'{name}.ipynb').exists()}
    titles = {name: notebook_title(notebook) for name, notebook in notebooks.items()}
    for name, notebook in notebooks.items():
        tidy(notebook)
        description = frontmatter_value(notebook, 'description')
        heading = f'# {titles[name]}' + (f'\n\n*{description}*' if description else '')
        notebook.cells.insert(0, nbformat.v4.new_markdown_cell(heading))
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    exporter = HTMLExporter(template_name='lab')
    exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={'remove_input'}), enabled=True)
    written = []
    for name, notebook in notebooks.items():
        depth = name.count('/')
        links = '\n'.join(
            f'<li><a href="{"../" * depth}{other}.html"{" class=current" if other == name else ""}>'
            f'{html.escape(titles[other])}</a></li>' for other in notebooks)
        body, _ = exporter.from_notebook_node(notebook)
        nav = (f'<nav id="mri-dino-sidebar"><p><b>mri_dino</b></p><ul>{links}</ul></nav>'
               '<style>#mri-dino-sidebar{position:fixed;top:0;left:0;width:230px;height:100%;overflow:auto;'
               'background:#f6f8fa;font:14px sans-serif;padding:8px;box-sizing:border-box}'
               '#mri-dino-sidebar ul{padding-left:14px}#mri-dino-sidebar .current{font-weight:bold}'
               'body{margin-left:240px !important}</style>')
        body = body.replace('<body', '<body data-page="' + html.escape(name) + '"', 1)
        body = re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + nav, body, count=1)
        target = out/f'{name}.html'
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
        written.append(target)
    for extra in proc.rglob('*'):      # pictures and data files the pages link to
        if extra.is_file() and extra.suffix.lower() in {'.png', '.jpg', '.jpeg', '.svg', '.gif', '.css'}:
            destination = out/extra.relative_to(proc)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(extra, destination)
    return written


def find_chromium() -> str:
    for name in ('chromium', 'chromium-browser', 'google-chrome', 'chrome'):
        if found := shutil.which(name): return found
    raise SystemExit('No Chromium found for the screenshot (Debian: apt-get install chromium)')


def screenshot(page: Path, target: Path, width=1280, height=2400) -> Path:
    "Open `page` in headless Chromium, save a PNG to `target`, and check it is not blank."
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        command = [find_chromium(), '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
                   f'--user-data-dir={profile}', f'--window-size={width},{height}',
                   f'--screenshot={target}', page.resolve().as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not target.exists():
        raise SystemExit(f'Chromium could not render {page}:\n{result.stderr[-3000:]}')
    from PIL import Image
    with Image.open(target) as image:
        colours = image.convert('RGB').resize((320, 600)).getcolors(maxcolors=1 << 16)
    if colours is not None and len(colours) < 50:
        raise SystemExit(f'The screenshot {target} looks blank ({len(colours)} colours)')
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=None, help="output folder (default: nbdev.yml's output-dir)")
    parser.add_argument('--screenshot', default=None, help='save a Chromium screenshot of the index page here')
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else ROOT/(yaml.safe_load((ROOT/'nbs/nbdev.yml').read_text())
                                               .get('project', {}).get('output-dir', '_docs'))
    proc = process_notebooks()
    pages = render(proc, out)
    images = sum(page.read_text().count('<img') for page in pages)
    print(f'docs: {len(pages)} pages, {images} pictures in {out}')
    if args.screenshot:
        print(f'screenshot: {screenshot(out/"index.html", Path(args.screenshot))}')


if __name__ == '__main__':
    main()
