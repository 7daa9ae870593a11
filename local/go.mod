module github.com/scrapeplatform/platform/local

go 1.26.8

require (
	github.com/rabbitmq/amqp091-go v1.16.0
	github.com/scrapeplatform/platform/shared v0.0.0
)

replace github.com/scrapeplatform/platform/shared => ../shared
