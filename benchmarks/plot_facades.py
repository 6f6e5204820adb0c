"""Plot the results of bench_facades.py for the docs.

Reads the JSON that ``bench_facades.py --json`` writes and renders one PNG:
for each workload, one bar per library with its median operations per
second, on a log scale.  Libraries that do not fsync every commit are
hatched.

Usage::

    python benchmarks/bench_facades.py --json facades.json
    python benchmarks/plot_facades.py facades.json
    python benchmarks/plot_facades.py facades.json -o elsewhere.png

Needs matplotlib (``pip install persist-queue sqlitedict diskcache
matplotlib`` installs it with the peers); it is not a dependency of
appendonly.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_OUTPUT = os.path.join(ROOT, 'docs', '_static', 'facades-ops.png')
OURS = 'appendonly'
OURS_COLOR = '#c0392b'
# matplotlib's tab10 without its red, which is ours.
PEER_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b',
               '#e377c2', '#7f7f7f', '#bcbd22', '#17becf']


def _import_pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(
            'plot_facades.py needs matplotlib: pip install persist-queue '
            'sqlitedict diskcache matplotlib') from None
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_ops(data, output):
    """Grouped bars: workloads along x, one bar per library, log y."""
    plt = _import_pyplot()
    from matplotlib.patches import Patch

    params, env = data['parameters'], data['environment']
    n, batch = params['n'], params['batch']
    workloads = [w for w, _ in data['workloads']]
    headings = {w: label.replace(', ', ',\n')
                for w, label in data['workloads']}
    summary = data['summary']
    keys = [k for k, _ in data['competitors'] if k in data['info']]
    labels = dict(data['competitors'])
    fsyncs = {k: data['info'][k].get('fsync') for k in keys}
    colors, peer = {}, 0
    for key in keys:
        if key == OURS:
            colors[key] = OURS_COLOR
        else:
            colors[key] = PEER_COLORS[peer % len(PEER_COLORS)]
            peer += 1

    fig, ax = plt.subplots(figsize=(12, 5.5), dpi=100)
    width = 0.8 / len(keys)
    for x, workload in enumerate(workloads):
        # Only the libraries that can do this workload, centred on x.
        present = [key for key in keys if key in summary[workload]]
        start = x - width * len(present) / 2
        for i, key in enumerate(present):
            ax.bar(start + i * width, summary[workload][key]['rate'], width,
                   align='edge', color=colors[key], edgecolor='black',
                   linewidth=0.5, hatch=None if fsyncs[key] else '///')

    ax.set_yscale('log')
    ax.set_ylabel('operations per second (median, log scale)')
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels([headings[w] for w in workloads], fontsize=9)
    ax.set_xlim(-0.5, len(workloads) - 0.5)
    ax.grid(axis='y', which='major', linestyle=':', linewidth=0.6)
    ax.set_axisbelow(True)
    runs = params['rounds']
    ax.set_title(
        f'Durable queues and dicts: N={n:,} operations, '
        f'{batch:,} per batched commit, '
        + (f'median of {runs} rounds' if runs > 1 else 'one round'),
        fontsize=11)

    handles = [Patch(facecolor=colors[key], edgecolor='black',
                     linewidth=0.5, hatch=None if fsyncs[key] else '///',
                     label=labels[key]) for key in keys]
    handles.append(Patch(facecolor='white', edgecolor='black',
                         linewidth=0.5, hatch='///',
                         label='hatched: no fsync per commit'))
    ax.legend(handles=handles, fontsize=8, loc='upper left',
              bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.text(0.01, 0.01,
             f'Python {env["python"]}, SQLite {env["sqlite"]}, '
             f'{env["cpus"]} CPUs, shared; compare bars within this '
             f'figure, not across machines.',
             fontsize=7, color='#555555')
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('json', help='what bench_facades.py --json wrote')
    parser.add_argument('-o', '--output', default=DEFAULT_OUTPUT,
                        help='the PNG to write (default: '
                             'docs/_static/facades-ops.png)')
    args = parser.parse_args(argv)
    with open(args.json) as f:
        data = json.load(f)
    plot_ops(data, args.output)
    print(f'wrote {os.path.relpath(args.output)}', file=sys.stderr)


if __name__ == '__main__':
    main()
