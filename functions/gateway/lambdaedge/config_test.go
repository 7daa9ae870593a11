package lambdaedge

import (
	"strings"
	"testing"
)

// Lambda needs no secret (API Gateway authenticates), checks idle connections and writes EMF by default.
func TestLoadConfigLambdaDefaults(t *testing.T) {
	t.Parallel()
	c, err := LoadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatalf("apigateway mode needs no secret: %v", err)
	}
	if c.Gateway.IdleCheck != DefaultIdleCheck || c.EMFNamespace != DefaultEMFNamespace {
		t.Errorf("defaults: idle check %v, EMF namespace %q", c.Gateway.IdleCheck, c.EMFNamespace)
	}
	c, err = LoadConfig(func(k string) string {
		return map[string]string{"RABBITMQ_IDLE_CHECK": "0s", "AUTH_MODE": "apigateway"}[k]
	})
	if err != nil || c.Gateway.IdleCheck != 0 {
		t.Errorf("RABBITMQ_IDLE_CHECK=0s: %v %v", c.Gateway.IdleCheck, err)
	}
	if _, err := LoadConfig(func(k string) string { return map[string]string{"AUTH_MODE": "jwt"}[k] }); err == nil || !strings.Contains(err.Error(), "AUTH_MODE") {
		t.Errorf("AUTH_MODE=jwt in Lambda: %v", err)
	}
}
