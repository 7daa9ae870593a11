module github.com/scrapeplatform/platform/test

go 1.26.8

require (
	github.com/rabbitmq/amqp091-go v1.16.0
	github.com/scrapeplatform/platform/local v0.0.0
	github.com/scrapeplatform/platform/shared v0.0.0
)

require github.com/golang-jwt/jwt/v5 v5.3.1 // indirect

replace github.com/scrapeplatform/platform/shared => ../shared

replace github.com/scrapeplatform/platform/local => ../local
