from appendonly import demo


def test_demo_verifies_and_reports(tmp_path, capsys):
    assert demo.main(['--dir', str(tmp_path), '--writers', '4',
                      '--pushes', '40']) == 0
    out = capsys.readouterr().out
    assert 'stack:       pushed 160, found 160, lost 0, duplicated 0' in out
    assert 'OK: nothing lost, nothing duplicated' in out
    assert (tmp_path / 'demo.fs').exists()
