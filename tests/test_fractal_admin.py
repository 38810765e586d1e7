import pytest
from django.urls import reverse


@pytest.fixture
def two_fractals(make_fractal):
    return make_fractal("alpha-team"), make_fractal("bravo-team")


def test_staff_user_lists_only_the_fractals_they_administer(client, make_user, two_fractals):
    alpha, bravo = two_fractals
    client.force_login(make_user(administers=[alpha]))
    response = client.get(reverse("admin:fractals_fractal_changelist"))
    assert response.status_code == 200
    assert b"alpha-team" in response.content
    assert b"bravo-team" not in response.content


@pytest.mark.parametrize("view", ["change", "delete", "history"])
def test_staff_user_cannot_view_or_change_a_fractal_they_do_not_administer(client, make_user, two_fractals, view):
    alpha, bravo = two_fractals
    client.force_login(make_user(administers=[alpha]))
    url = reverse(f"admin:fractals_fractal_{view}", args=[bravo.pk])
    assert client.get(url).status_code in (403, 404)
    assert client.post(url, {"name": "hijacked"}).status_code in (403, 404)
    bravo.refresh_from_db()
    assert bravo.name == "bravo-team"


def test_staff_user_can_change_a_fractal_they_administer(client, make_user, two_fractals):
    alpha, _ = two_fractals
    client.force_login(make_user(administers=[alpha]))
    url = reverse("admin:fractals_fractal_change", args=[alpha.pk])
    assert client.get(url).status_code == 200


def test_viewer_membership_does_not_grant_administration(client, make_user, two_fractals):
    from strix.fractals.models import FractalMembership

    alpha, _ = two_fractals
    viewer = make_user()
    FractalMembership.objects.create(fractal=alpha, user=viewer, role=FractalMembership.Role.VIEWER)
    client.force_login(viewer)
    assert client.get(reverse("admin:fractals_fractal_change", args=[alpha.pk])).status_code == 404


def test_superuser_administers_every_fractal(client, make_user, two_fractals):
    client.force_login(make_user(superuser=True))
    content = client.get(reverse("admin:fractals_fractal_changelist")).content
    assert b"alpha-team" in content and b"bravo-team" in content
