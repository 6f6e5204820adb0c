"""The one harness of the benchmark scripts.

A script describes what it measures with a :class:`Bench` subclass (its
competitors, its workloads, how one child process measures them, its
targets) and calls :func:`main`.  The harness does the rest, the same way
for every script:

- **Child processes.**  Every measurement runs in a fresh child process:
  the script re-invokes itself with ``--child`` and reads what to run as
  JSON on its standard input; the result is the last line of its standard
  output.  One child per competitor and round (or per competitor, workload
  and round, where :attr:`Bench.child_per_workload` says so), so no cache,
  garbage or open file of one run is there in the next.
- **Interleaved rounds.**  Round after round, every competitor runs once;
  the order is reversed every other round and rotated by one every two,
  so no competitor always follows the same one.  ``os.sync()`` runs before each
  child, off the clock.
- **Paired ratios.**  In each round, a competitor's rate (or time) is
  divided by the baseline's of the same round; the table shows the median
  of those ratios and their range, next to the median rates.
- **Checks.**  Each measurement says how many items it checked afterwards
  and how many were lost or duplicated; the harness prints the totals.
- **Targets.**  Each :class:`Target` is printed as ``met      <text>`` or
  ``NOT MET  <text>``, with the paired ratio it was judged on.
- **Progress** on standard error while it is a terminal: one line with a
  bar, rewritten (as the ``appendonly`` command's ``_progress``).
- ``--rounds``, ``--quick``, ``--json PATH``, ``--report PATH``,
  ``--only``, ``--workload``, ``--tmpdir``, ``-v`` for every script.

A measurement, as a child returns it for one workload, is a dict:
``ops`` and ``seconds`` (the timed part), ``checked``, ``lost`` and
``duplicated`` (the check afterwards), ``problems`` (strings, if
anything else went wrong), and any other numbers, which the summary
reports as medians over the rounds (``extra``).
"""
import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: Keys of a measurement that are not summarized as extra numbers.
RESERVED = ('ops', 'seconds', 'checked', 'lost', 'duplicated', 'problems')

#: Width of the progress bar, in characters.
BAR = 30


def checkout_env(**more):
    """The environment, with this checkout first on the path (and ``more``
    variables)."""
    env = dict(os.environ, **more)
    paths = [ROOT] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else [])
    env['PYTHONPATH'] = os.pathsep.join(paths)
    return env


class Option:
    """A script's own command-line option: an int with a default and a
    default for ``--quick``."""

    def __init__(self, *flags, default, quick=None, help, type=int):
        self.flags, self.default, self.help, self.type = (
            flags, default, help, type)
        self.quick = default if quick is None else quick
        self.dest = flags[-1].lstrip('-').replace('-', '_')

    def add_to(self, parser):
        shown = (f'default: {self.default:,}' if self.quick == self.default
                 else f'default: {self.default:,}; {self.quick:,} with '
                      f'--quick')
        parser.add_argument(*self.flags, dest=self.dest, type=self.type,
                            help=f'{self.help} ({shown})')


class Target:
    """A goal: competitor ``key`` on ``workload`` at least ``wanted`` times
    the ``reference``'s rate (or at most ``wanted`` times its time, with
    ``of='time'``), judged on the median of the per-round ratios.

    ``reference`` is a competitor's key, or ``(key, workload)`` for another
    workload; ``condition``, if given, is a function of the summary that
    returns ``(ok, words)``, which must hold too.
    """

    def __init__(self, text, workload, key, reference, wanted, of='rate',
                 condition=None):
        self.text, self.workload, self.key = text, workload, key
        self.reference, self.wanted, self.of = reference, wanted, of
        self.condition = condition

    def _reference(self):
        """``(key, workload)`` of the reference."""
        if isinstance(self.reference, (tuple, list)):
            return tuple(self.reference)
        return self.reference, self.workload

    def workloads(self):
        """The workloads it needs (a target of a workload that did not
        run is left out)."""
        return {self.workload, self._reference()[1]}

    def judge(self, data):
        ref_key, ref_workload = self._reference()
        ratios = paired(data, self.workload, self.key, ref_workload,
                        ref_key, self.of)
        verdict = {'text': self.text, 'wanted': self.wanted, 'of': self.of,
                   'ratio': None, 'met': False}
        if not ratios:
            missing = data['skipped'].get(ref_key) or data['skipped'].get(
                self.key) or 'not measured'
            verdict['detail'] = f'no ratio ({missing})'
            return verdict
        ratio = statistics.median(ratios)
        ok = ratio <= self.wanted if self.of == 'time' else \
            ratio >= self.wanted
        mine = data['summary'][self.workload][self.key]
        theirs = data['summary'][ref_workload][ref_key]
        if self.of == 'time':
            measured = (f'{format_time(mine["seconds"])} vs '
                        f'{format_time(theirs["seconds"])}')
        else:
            measured = f'{mine["rate"]:,.0f}/s vs {theirs["rate"]:,.0f}/s'
        detail = (f'{ratio:.2f}x (paired median of {len(ratios)}; '
                  f'{min(ratios):.2f}..{max(ratios):.2f}), {measured}')
        if self.condition is not None:
            holds, words = self.condition(data)
            ok = ok and holds
            detail += f'; {words}'
        verdict.update(ratio=ratio, min=min(ratios), max=max(ratios),
                       met=ok, detail=detail)
        return verdict


class Bench:
    """What a script measures.  Subclasses set the attributes and override
    :meth:`run`; the other methods have defaults."""

    #: One line: what the script measures (``--help``, and first printed).
    title = ''
    #: ``[(key, label)]``, in table order.
    competitors = []
    #: The key every ratio of the table is taken against.
    baseline = None
    #: Keys that run whatever ``--only`` says (the baseline does too).
    always = ()
    #: ``[(key, label)]``; a script with one workload gives it no label.
    workloads = [('run', '')]
    #: One child per competitor, workload and round instead of one per
    #: competitor and round.
    child_per_workload = False
    #: ``'rate'``: the table shows ops/s and ratios of rates (higher is
    #: faster); ``'time'``: median times and ratios of times.
    measure = 'rate'
    #: The heading of the rate column.
    unit = 'ops/s'
    #: The competitor column's heading.
    competitor_heading = 'competitor'
    #: The ratio column's heading (default: ``x`` and the baseline's label
    #: up to its first parenthesis).
    ratio_heading = None
    #: The script's own options (:class:`Option`).
    options = []
    #: Rounds by default, and with ``--quick``.
    rounds = (5, 1)
    #: Distributions whose versions the header prints (when installed).
    packages = ('ZODB', 'persistent', 'BTrees', 'transaction')

    def add_arguments(self, parser):
        """Options that are not ints with a quick default."""

    def prepare(self, args):
        """In the parent, before the first round: ``{key: why}`` of the
        competitors that cannot run here (skipped, and said so)."""
        return {}

    def env(self, args, key):
        """The child's environment."""
        return checkout_env()

    @contextlib.contextmanager
    def around(self, args, key, workload):
        """In the parent, around one child: set up what it needs in other
        processes (a server...) and yield JSON-able ``extra`` for it
        (``extra['env']``, if there, is added to its environment)."""
        yield {}

    def run(self, args, key, workloads, extra):
        """In the child: measure competitor ``key`` on each of
        ``workloads``; return ``{'workloads': {workload: measurement},
        'info': {...}}`` (``info``: anything about the competitor worth
        keeping, such as the durability it was found to have)."""
        raise NotImplementedError

    def header(self, data):
        """Lines that say what was measured, printed above the table."""
        return []

    def columns(self, data):
        """Extra columns: ``[(heading, function(summary entry, key) ->
        str)]``."""
        return []

    def notes(self, data):
        """Lines printed below the table."""
        return []

    def targets(self, data):
        """The :class:`Target`\\ s of this script."""
        return []


#
# Arguments
#

def parse_args(bench, argv=None):
    parser = argparse.ArgumentParser(description=bench.title)
    for option in bench.options:
        option.add_to(parser)
    default, quick = bench.rounds
    parser.add_argument('-r', '--rounds', '--repeat', dest='rounds',
                        type=int, help=f'rounds: every competitor runs once '
                        f'per round (default: {default}; {quick} with '
                        f'--quick)')
    parser.add_argument('--quick', action='store_true',
                        help='a small run, for trying the script out')
    parser.add_argument('--json', metavar='PATH',
                        help='also write parameters, summary, targets and '
                             'every run here')
    parser.add_argument('--report', metavar='PATH',
                        help='run nothing: print again what --json saved')
    parser.add_argument('--only', action='append', metavar='COMPETITOR',
                        choices=[key for key, _ in bench.competitors],
                        help='run only this competitor (repeatable; '
                             + ', '.join(dict.fromkeys(
                                 (bench.baseline,) + tuple(bench.always)))
                             + ' always run): %(choices)s')
    if len(bench.workloads) > 1:
        parser.add_argument('--workload', action='append',
                            metavar='WORKLOAD',
                            choices=[key for key, _ in bench.workloads],
                            help='run only this workload (repeatable): '
                                 '%(choices)s')
    parser.add_argument('--tmpdir', default=None,
                        help='where the temporary stores go (default: the '
                             'system temp directory)')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='print each run to stderr as it ends')
    bench.add_arguments(parser)
    parser.add_argument('--child', action='store_true',
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for option in bench.options:
        if getattr(args, option.dest) is None:
            setattr(args, option.dest,
                    option.quick if args.quick else option.default)
        if getattr(args, option.dest) < 1:
            parser.error(f'{option.flags[-1]} must be at least 1')
    if args.rounds is None:
        args.rounds = quick if args.quick else default
    if args.rounds < 1:
        parser.error('--rounds must be at least 1')
    if not hasattr(args, 'workload'):
        args.workload = None
    return args


#
# The child
#

def child_main(bench):
    """Run what the parent sent on stdin; print the result as JSON."""
    order = json.load(sys.stdin)
    args = argparse.Namespace(**order['args'], round=order['round'])
    result = bench.run(args, order['key'], order['workloads'],
                       order['extra'])
    print(json.dumps(result))


def check_import(expected=ROOT):
    """Refuse to measure an ``appendonly`` imported from elsewhere than
    ``expected``; return the file it came from."""
    import appendonly
    where = os.path.realpath(appendonly.__file__)
    expected = os.path.realpath(expected) + os.sep
    if not where.startswith(expected):
        raise SystemExit(f'appendonly imported from {where}, expected '
                         f'under {expected}')
    return where


def timed(func):
    """``(seconds, func())``, after writing back what came before."""
    os.sync()
    began = time.perf_counter()
    result = func()
    return time.perf_counter() - began, result


def compare(expected, found):
    """``(lost, duplicated)``: items of ``expected`` missing from ``found``,
    and items found more than once (or found and not expected)."""
    expected_set, found_set = set(expected), set(found)
    lost = len(expected_set - found_set)
    duplicated = len(found) - len(found_set) + len(found_set - expected_set)
    return lost, duplicated


def measurement(ops, seconds, expected=None, found=None, **extra):
    """A measurement; with ``expected`` and ``found``, checked."""
    result = {'ops': ops, 'seconds': seconds, 'checked': 0, 'lost': 0,
              'duplicated': 0, 'problems': []}
    if expected is not None:
        result['checked'] = len(expected)
        result['lost'], result['duplicated'] = compare(expected, found)
    result.update(extra)
    return result


#
# The parent
#

def run_child(bench, args, key, workloads, rnd):
    script = os.path.abspath(sys.argv[0])
    with bench.around(args, key, workloads[0]) as extra:
        env = dict(bench.env(args, key), **extra.pop('env', {}))
        os.sync()           # what the last run left dirty, off the clock
        order = {'args': vars(args), 'key': key, 'workloads': workloads,
                 'round': rnd, 'extra': extra}
        proc = subprocess.run(
            [sys.executable, script, '--child'], input=json.dumps(order),
            env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f'child {key} {" ".join(workloads)} (round '
                         f'{rnd + 1}) failed')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def order(items, rnd):
    """Round ``rnd``'s order: reversed every other round, and rotated by
    one every two rounds (with three competitors, six rounds run every
    order once)."""
    shift = rnd // 2 % len(items)
    turned = items[shift:] + items[:shift]
    return turned[::-1] if rnd % 2 else turned


def progress(done, total, label, clear=False):
    """One line on stderr, rewritten, while stderr is a terminal (with
    ``clear``, the line is erased, for a message)."""
    if not sys.stderr.isatty() or not total:
        return
    if clear:
        sys.stderr.write('\r\033[K')
        return
    filled = int(BAR * done / total)
    width = shutil.get_terminal_size().columns
    line = (f'[{"#" * filled}{"." * (BAR - filled)}] {done}/{total} '
            f'{label}')
    sys.stderr.write('\r\033[K' + line[:width - 1])
    if done == total:
        sys.stderr.write('\r\033[K')
    sys.stderr.flush()


def stop_process(process, timeout=15, gently=None):
    """Stop a helper process: ``gently(process)`` (by default SIGTERM),
    then, after ``timeout`` seconds, kill it.  Whether it stopped in
    time."""
    if process.poll() is not None:
        return True
    if gently is None:
        process.terminate()
    else:
        gently(process)
    try:
        process.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
        return False


def versions(names):
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = 'not installed'
    return found


def run_rounds(bench, args, keys, workloads):
    """Every competitor of ``keys`` once per round, interleaved:
    ``(runs, info)``, ``runs[workload][key]`` the measurements in round
    order, ``info[key]`` what its last child said about it."""
    if bench.child_per_workload:
        batches = [[w] for w in workloads]
    else:
        batches = [workloads]
    labels, names = dict(bench.competitors), dict(bench.workloads)
    runs = {w: {key: [] for key in keys} for w in workloads}
    info = {}
    total, done = args.rounds * len(keys) * len(batches), 0
    for rnd in range(args.rounds):
        for batch in batches:
            for key in order(keys, rnd):
                label = f'round {rnd + 1}/{args.rounds}: {labels[key]}'
                if bench.child_per_workload:
                    label += f', {names[batch[0]]}'
                progress(done, total, label)
                result = run_child(bench, args, key, batch, rnd)
                done += 1
                info[key] = result.get('info', {})
                for workload, m in result['workloads'].items():
                    if workload in runs:    # else it ran to set others up
                        m['round'] = rnd
                        runs[workload][key].append(m)
                        if args.verbose:
                            progress(done, total, '', clear=True)
                            print(f'  [{rnd + 1}/{args.rounds}] {key} '
                                  f'{workload}: {rate(m):,.0f} ops/s, '
                                  f'{m["lost"]} lost, {m["duplicated"]} '
                                  f'duplicated', file=sys.stderr)
    progress(total, total, '')
    return runs, info


def parent_main(bench, args):
    keys = [key for key, _ in bench.competitors
            if args.only is None or key in args.only or key == bench.baseline
            or key in bench.always]
    workloads = [w for w, _ in bench.workloads
                 if args.workload is None or w in args.workload]
    skipped = {key: why for key, why in bench.prepare(args).items()
               if key in keys}
    for key, why in skipped.items():
        print(f'{dict(bench.competitors)[key]}: skipped: {why}',
              file=sys.stderr)
    load_before = os.getloadavg()
    began = time.perf_counter()
    runs, info = run_rounds(bench, args,
                            [key for key in keys if key not in skipped],
                            workloads)
    elapsed = time.perf_counter() - began
    parameters = {name: value for name, value in vars(args).items()
                  if name not in ('child', 'json', 'report', 'verbose')}
    data = {
        'benchmark': os.path.basename(sys.argv[0]),
        'parameters': parameters,
        'environment': {
            'python': platform.python_version(),
            'implementation': platform.python_implementation(),
            'sqlite': sqlite3.sqlite_version,
            'versions': versions(bench.packages),
            'cpus': os.cpu_count(),
            'loadavg_before': load_before, 'loadavg_after': os.getloadavg(),
            'elapsed_s': elapsed,
        },
        'competitors': [[key, dict(bench.competitors)[key]] for key in keys],
        'baseline': bench.baseline,
        'workloads': [[w, dict(bench.workloads)[w]] for w in workloads],
        'skipped': skipped,
        'info': info,
        'runs': runs,
    }
    complete(bench, data)
    report(bench, data)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(data, f, indent=2)
            f.write('\n')


#
# Summary
#

def rate(m):
    return m['ops'] / m['seconds']


def paired(data, workload, key, ref_workload, ref_key, of='rate'):
    """Per-round ratios of ``key`` on ``workload`` to ``ref_key`` on
    ``ref_workload``: rates (``of='rate'``) or times (``of='time'``)."""
    mine = data['runs'].get(workload, {}).get(key, [])
    theirs = {m['round']: m for m in
              data['runs'].get(ref_workload, {}).get(ref_key, [])}
    ratios = []
    for m in mine:
        ref = theirs.get(m['round'])
        if ref is not None:
            ratios.append(m['seconds'] / ref['seconds'] if of == 'time'
                          else rate(m) / rate(ref))
    return ratios


def summarize(data, workload, key, of):
    mine = data['runs'][workload][key]
    rates = [rate(m) for m in mine]
    times = [m['seconds'] for m in mine]
    extras = sorted({name for m in mine for name, value in m.items()
                     if name not in RESERVED and name != 'round'
                     and isinstance(value, (int, float))
                     and not isinstance(value, bool)})
    entry = {
        'rate': statistics.median(rates), 'rate_min': min(rates),
        'rate_max': max(rates),
        'seconds': statistics.median(times), 'seconds_min': min(times),
        'seconds_max': max(times),
        'ops': mine[0]['ops'], 'rounds': len(mine),
        'checked': sum(m['checked'] for m in mine),
        'lost': sum(m['lost'] for m in mine),
        'duplicated': sum(m['duplicated'] for m in mine),
        'lost_max': max(m['lost'] for m in mine),
        'lost_median': statistics.median(m['lost'] for m in mine),
        'duplicated_median': statistics.median(
            m['duplicated'] for m in mine),
        'duplicated_max': max(m['duplicated'] for m in mine),
        'problems': sorted({p for m in mine for p in m['problems']}),
        'extra': {name: statistics.median(
            m[name] for m in mine if name in m) for name in extras},
        'extra_max': {name: max(m[name] for m in mine if name in m)
                      for name in extras},
    }
    ratios = paired(data, workload, key, workload, data['baseline'], of)
    if ratios:
        entry.update(ratio=statistics.median(ratios), ratio_min=min(ratios),
                     ratio_max=max(ratios), ratios=ratios)
    return entry


def complete(bench, data):
    """Add the summary and the targets' verdicts to ``data``."""
    data['summary'] = {
        workload: {key: summarize(data, workload, key, bench.measure)
                   for key, mine in by_key.items() if mine}
        for workload, by_key in data['runs'].items()}
    data['targets'] = [target.judge(data) for target in bench.targets(data)
                       if target.workloads() <= set(data['runs'])]


#
# Report
#

def format_time(seconds, unit=None):
    """``seconds`` in s or ms; with ``unit`` (a median's), a bare number."""
    if (unit or ('s' if seconds >= 1 else 'ms')) == 's':
        return f'{seconds:.2f}' + ('' if unit else ' s')
    return f'{seconds * 1e3:.0f}' + ('' if unit else ' ms')


def table(header, rows, left=2):
    """Columns aligned: the first ``left`` to the left, others right."""
    widths = [max(len(row[i]) for row in [header] + rows)
              for i in range(len(header))]

    def line(row):
        cells = [cell.ljust(width) if i < left else cell.rjust(width)
                 for i, (cell, width) in enumerate(zip(row, widths))]
        return '  '.join(cells).rstrip()

    rule = '  '.join('-' * w for w in widths)
    return '\n'.join([line(header), rule] + [line(row) for row in rows])


def format_table(bench, data):
    labels = dict(data['competitors'])
    ratio = bench.ratio_heading or \
        'x ' + labels[data['baseline']].split(' (')[0]
    extra = bench.columns(data)
    several = len(data['workloads']) > 1
    if bench.measure == 'time':
        head = ['median', 'min..max']
    else:
        head = [bench.unit, 'min..max']
    header = ((['workload'] if several else []) + [bench.competitor_heading]
              + head + [ratio, 'min..max']
              + [heading for heading, _ in extra])
    rows = []
    for workload, workload_label in data['workloads']:
        first = True
        for key, label in data['competitors']:
            s = data['summary'][workload].get(key)
            if s is None:
                if key in data['skipped']:
                    rows.append(([workload_label if first else '']
                                 if several else [])
                                + [label, 'skipped'] + [''] * (
                                    len(header) - 2 - several))
                    first = False
                continue
            if bench.measure == 'time':
                unit = 's' if s['seconds'] >= 1 else 'ms'
                cells = [format_time(s['seconds']),
                         f'{format_time(s["seconds_min"], unit)}..'
                         f'{format_time(s["seconds_max"], unit)}']
            else:
                cells = [f'{s["rate"]:,.0f}',
                         f'{s["rate_min"]:,.0f}..{s["rate_max"]:,.0f}']
            if 'ratio' in s:
                cells += [f'{s["ratio"]:.2f}',
                          f'{s["ratio_min"]:.2f}..{s["ratio_max"]:.2f}']
            else:
                cells += ['-', '']
            cells += [func(s, key) for _, func in extra]
            rows.append(([workload_label if first else ''] if several
                         else []) + [label] + cells)
            first = False
    return table(header, rows, left=1 + several)


def checks(data):
    """Lines: what was checked after the runs, and anything lost."""
    labels, workloads = dict(data['competitors']), dict(data['workloads'])
    checked = runs = 0
    bad = []
    for workload, by_key in data['summary'].items():
        for key, s in by_key.items():
            checked += s['checked']
            runs += s['rounds']
            what = []
            if s['lost']:
                what.append(f'{s["lost"]:,} lost (at most '
                            f'{s["lost_max"]:,} in a round)')
            if s['duplicated']:
                what.append(f'{s["duplicated"]:,} duplicated (at most '
                            f'{s["duplicated_max"]:,} in a round)')
            what += s['problems']
            if what:
                name = labels[key] + (f', {workloads[workload]}'
                                      if workloads[workload] else '')
                bad.append(f'  {name}: ' + '; '.join(what))
    head = (f'checked after every run: {checked:,} items in {runs} runs; '
            + ('nothing lost or duplicated' if not bad else
               'LOST, DUPLICATED OR WRONG:'))
    return [head] + bad


def report(bench, data):
    """Print one run: the header, the table, notes, checks, targets."""
    env, params = data['environment'], data['parameters']
    for line in bench.header(data):
        print(line)
    base = dict(data['competitors'])[data['baseline']]
    print(f'R={params["rounds"]} rounds, each competitor once per round in '
          f'a fresh child process, order reversed every other round and '
          f'rotated every two; medians over the rounds; "x": median '
          f'(min..max) of the per-round ratios of '
          + ('times' if bench.measure == 'time' else 'rates')
          + f' to {base} in the same round')
    print(f'Python {env["python"]} ({env["implementation"]}), SQLite '
          f'{env["sqlite"]}, '
          + ', '.join(f'{n} {v}' for n, v in env['versions'].items())
          + f'; {env["cpus"]} CPUs')
    print()
    print(format_table(bench, data))
    print()
    labels = dict(data['competitors'])
    for key, why in data['skipped'].items():
        print(f'skipped: {labels[key]}: {why}')
    for line in bench.notes(data):
        print(line)
    for line in checks(data):
        print(line)
    if data['targets']:
        print()
        print('targets:')
        for v in data['targets']:
            print(f'  {"met    " if v["met"] else "NOT MET"}  '
                  f'{v["text"]}: {v["detail"]}')
    print()
    print(f'Noise: a shared {env["cpus"]}-CPU machine; load average '
          f'{env["loadavg_before"][0]:.2f} before, '
          f'{env["loadavg_after"][0]:.2f} after; {env["elapsed_s"]:.0f} s '
          f'in all.  Compare ratios within one run, not absolute numbers '
          f'across runs.')


def main(bench, argv=None):
    args = parse_args(bench, argv)
    if args.child:
        child_main(bench)
    elif args.report:
        with open(args.report) as f:
            report(bench, json.load(f))
    else:
        parent_main(bench, args)
