module github.com/scrapeplatform/platform/shared

go 1.26.8

require (
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/rabbitmq/amqp091-go v1.16.0
)
