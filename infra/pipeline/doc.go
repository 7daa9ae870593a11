// Package pipeline holds the checks of the CI/CD pipeline definition for users: the GitHub Actions
// workflows in .github/workflows (pipeline.yml and the reusable deploy.yml). They cannot run here, so the
// tests lint them with actionlint (syntax, expressions, job dependencies, action inputs, reusable-workflow
// calls) and check the structure the deployment relies on.
package pipeline
