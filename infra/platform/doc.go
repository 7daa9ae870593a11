// Package platform is the CDK stack of one stage of the scraping platform: network, broker, scripts
// bucket, the Cognito identity that issues the API's tokens, HTTP API with the gateway Lambda, Fargate
// workers with backlog-per-task autoscaling, the queue-depth Lambda, and observability (dashboard, alarms
// that page the settings' subscriptions, Prometheus); and, where a stage turns it on, the separate Grafana
// stack, so that its prerequisite (IAM Identity Center) can never roll back the platform.
//
// It never imports runtime code: the Lambdas arrive as folders holding a built `bootstrap`
// (Artifacts), the worker as a Dockerfile asset, and the runtime learns resource names from environment
// variables. cdk-nag's AwsSolutions pack runs on every synthesis (Check); each finding the design accepts
// is suppressed next to the resource it concerns, with the reason.
package platform
