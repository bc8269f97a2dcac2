// Verify the gateway's tokens with Go libraries: golang-jwt/jwt and go-jose (JWKS parsing,
// and its own jwt package). Usage: go run . cases.json (one JSON line per case on stdout).
package main

import (
	"encoding/json"
	"fmt"
	"os"

	jwt "github.com/golang-jwt/jwt/v4"
	jose "gopkg.in/square/go-jose.v2"
	josejwt "gopkg.in/square/go-jose.v2/jwt"
)

type testCase struct {
	Alg      string             `json:"alg"`
	Token    string             `json:"token"`
	Jwks     jose.JSONWebKeySet `json:"jwks"`
	Issuer   string             `json:"issuer"`
	Audience string             `json:"audience"`
}

func verdict(err error) string {
	if err == nil {
		return "ok"
	}
	return "no: " + err.Error()
}

func main() {
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var cases []testCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		panic(err)
	}
	for _, c := range cases {
		out := map[string]string{"alg": c.Alg}
		_, err := jwt.Parse(c.Token, func(t *jwt.Token) (interface{}, error) {
			kid, _ := t.Header["kid"].(string)
			keys := c.Jwks.Key(kid)
			if len(keys) == 0 {
				return nil, fmt.Errorf("no key %q", kid)
			}
			return keys[0].Key, nil
		}, jwt.WithValidMethods([]string{c.Alg}))
		out["golang-jwt"] = verdict(err)
		parsed, err := josejwt.ParseSigned(c.Token)
		if err == nil {
			var claims josejwt.Claims
			err = parsed.Claims(&c.Jwks, &claims)
			if err == nil {
				err = claims.Validate(josejwt.Expected{Issuer: c.Issuer, Audience: josejwt.Audience{c.Audience}})
			}
		}
		out["go-jose"] = verdict(err)
		line, _ := json.Marshal(out)
		fmt.Println(string(line))
	}
}
