import torch

from tailorgen.fusion import InterestAttention


def _inputs(b=2, k=5, d=384, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, k, d, generator=g), torch.randn(b, k, d, generator=g)


def test_shapes():
    m = InterestAttention(token_dim=64, num_heads=4).eval()
    t, i = _inputs()
    assert m(t, i).shape == (2, 5, 64)


def test_images_reach_the_tokens_through_cross_attention():
    m = InterestAttention(token_dim=64).eval()
    t, i = _inputs()
    a = m(t, i)
    b = m(t, i + torch.randn_like(i))
    assert not torch.allclose(a, b, atol=1e-4)


def test_padded_neighbours_change_nothing():
    m = InterestAttention(token_dim=64).eval()
    t, i = _inputs(b=1, k=5)
    pad = torch.tensor([[False, False, False, True, True]])
    a = m(t, i, pad, pad)
    t2, i2 = t.clone(), i.clone()
    t2[:, 3:], i2[:, 3:] = 100.0, -100.0  # garbage in the padded slots
    b = m(t2, i2, pad, pad)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert torch.all(b[:, 3:] == 0)
    # And equals running on the 3 real neighbours alone.
    torch.testing.assert_close(a[:, :3], m(t[:, :3], i[:, :3]), atol=1e-5, rtol=1e-5)


def test_trains_and_round_trips(tmp_path):
    torch.manual_seed(0)
    m = InterestAttention(token_dim=32, num_heads=2)
    t, i = _inputs(b=8, k=4)
    target = torch.randn(8, 4, 32)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = (m(t, i) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    m.save_pretrained(str(tmp_path))
    m2 = InterestAttention.from_pretrained(str(tmp_path))
    torch.testing.assert_close(m.eval()(t, i), m2.eval()(t, i))


def test_extra_tokens_join_the_images_as_keys_and_values():
    m = InterestAttention(token_dim=64).eval()
    t, i = _inputs(b=1, k=4)
    extra = torch.randn(1, 3, 64, generator=torch.Generator().manual_seed(1))
    a = m(t, i, extra_image_tokens=extra)
    assert a.shape == (1, 4, 64)
    assert not torch.allclose(a, m(t, i), atol=1e-4)
    assert not torch.allclose(a, m(t, i, extra_image_tokens=torch.randn_like(extra)), atol=1e-4)
    # A padded extra slot changes nothing: equal to running with the real extra tokens alone.
    pad = torch.tensor([[False, False, True]])
    garbage = extra.clone()
    garbage[:, 2] = 100.0
    torch.testing.assert_close(
        m(t, i, extra_image_tokens=garbage, extra_padding=pad),
        m(t, i, extra_image_tokens=extra[:, :2]),
        atol=1e-5,
        rtol=1e-5,
    )
