from tests.conftest import Gateway


def test_token_and_me(gateway: Gateway) -> None:
    response = gateway.client.get("/v1/me", headers=gateway.auth("court"))
    assert response.status_code == 200
    body = response.json()
    assert body["agency"] == "FY640104"
    assert body["scopes"] == ["exchange"]
