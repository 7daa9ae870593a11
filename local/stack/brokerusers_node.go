package stack

import (
	"net"
	"os"
	"strconv"
	"strings"
)

// DefaultManagementPort is RabbitMQ's management API port.
const DefaultManagementPort = 15672

// defaultManagementURL is the management API of a broker this package did not start: RABBITMQ_MANAGEMENT_URL,
// else port 15672 of the AMQP host.
func defaultManagementURL(host string) string {
	if u := os.Getenv("RABBITMQ_MANAGEMENT_URL"); u != "" {
		return strings.TrimRight(u, "/")
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(DefaultManagementPort))
}

// withManagement adds the management plugin on 127.0.0.1:port to a private node's plugins and
// configuration (port 0: unchanged).
func withManagement(plugins string, conf *string, port int) string {
	if port <= 0 {
		return plugins
	}
	*conf += "management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = " + strconv.Itoa(port) + "\n"
	list := strings.TrimSuffix(strings.TrimSpace(plugins), ".")
	list = strings.TrimSuffix(strings.TrimPrefix(list, "["), "]")
	if list == "" {
		return "[rabbitmq_management].\n"
	}
	return "[" + list + ",rabbitmq_management].\n"
}
